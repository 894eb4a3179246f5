package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/internal/pcscd"
	"github.com/simtix/simtix/issuer"
)

// background runs a long-lived command (card serve, sync --watch) until
// its stop is called; stop interrupts it as Ctrl-C does and returns its
// exit status and output.
func background(t *testing.T, args ...string) (stop func() (int, string, string)) {
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, out, errOut) }()
	stopped, code := false, -1
	stop = func() (int, string, string) {
		if !stopped {
			stopped = true
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("%v did not stop: %s", args, errOut)
			}
		}
		return code, out.String(), errOut.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestRolesThroughPCSC runs the handset and the gate from the command line
// on the card served through real pcscd: `card serve` on two vpcd slots,
// `sync --reader` (once, then watching) on the contact reader, `gate
// --reader --once` on the contactless one; the checked ticket leaves the
// card by itself.
func TestRolesThroughPCSC(t *testing.T) {
	d := pcscd.Start(t, pcscd.Slots(2))
	r := newRoles(t)
	serve := background(t, "card", "serve", "--image", r.image, "--vpcd", d.ContactAddr(0), "--contactless-vpcd", d.ContactlessAddr(0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, reader := range []string{d.ContactReader(0), d.ContactlessReader(0)} {
		require.NoError(t, d.WaitCard(ctx, reader, true), "the served card in %s", reader)
	}

	first := decodeJSON[syncJSON](t, simtixOK(t, "sync", "--server", r.srv.URL, "--reader", d.ContactReader(0), "--json"))
	assert.Equal(t, testSerial, first.Serial.String())
	ordered := r.order("--file", "corpus")
	require.Positive(t, ordered.Summary["card"])

	watch := background(t, "sync", "--server", r.srv.URL, "--reader", d.ContactReader(0), "--watch", "--interval", "50ms", "--json")
	waitFor(t, "the direct tickets on the card", func() bool {
		_, by := r.tickets()
		return len(by[box.OnCard]) == ordered.Summary["card"]
	})

	code, out, errOut := simtix(t, "gate", "--reader", d.ContactlessReader(0), "--once", "--json",
		"--issuer-keys", r.srv.File(issuer.KeySetFile), "--venue", "国家大剧院",
		"--now", "2026-12-05T19:15:00Z", "--timezone", "UTC", "--journal", t.TempDir()+"/gate.journal",
		"--server", r.srv.URL, "--token-file", r.srv.File(issuer.GateTokenFile))
	require.Equal(t, exitOK, code, "%s%s", errOut, out)
	verdict := decodeJSON[gateJSON](t, out)
	require.True(t, verdict.Accepted, verdict.Reason)
	assert.Equal(t, 3, verdict.APDUs)
	admitted := verdict.Ticket.ID

	// The watching handset sees the card's notification and syncs: the
	// checked ticket leaves the card.
	waitFor(t, "the checked ticket deleted from the card", func() bool {
		ans, _ := r.tickets()
		for _, tv := range ans.Tickets {
			if tv.ID == admitted {
				return tv.State == box.Checked && !cardHolds(t, r, tv)
			}
		}
		return false
	})

	// The card leaves the readers and comes back (its server restarts):
	// the watching handset waits for it and goes on.
	code, _, errOut = serve()
	require.Equal(t, exitOK, code, errOut)
	for _, reader := range []string{d.ContactReader(0), d.ContactlessReader(0)} {
		// pcscd must see the card gone before another card process
		// connects (../shared/notes/pcsc-vpcd.md).
		require.NoError(t, d.WaitCard(ctx, reader, false), "the card gone from %s", reader)
	}
	serve = background(t, "card", "serve", "--image", r.image, "--vpcd", d.ContactAddr(0), "--contactless-vpcd", d.ContactlessAddr(0))
	for _, reader := range []string{d.ContactReader(0), d.ContactlessReader(0)} {
		require.NoError(t, d.WaitCard(ctx, reader, true), "the served card back in %s", reader)
	}
	code, out, errOut = simtix(t, "gate", "--reader", d.ContactlessReader(0), "--once", "--json",
		"--issuer-keys", r.srv.File(issuer.KeySetFile), "--venue", "国家大剧院",
		"--now", "2026-12-05T19:16:00Z", "--timezone", "UTC", "--journal", t.TempDir()+"/gate.journal")
	require.Equal(t, exitOK, code, "%s%s", errOut, out)
	second := decodeJSON[gateJSON](t, out).Ticket.ID
	require.NotEqual(t, admitted, second)
	recorded := func() bool {
		ans, _ := r.tickets()
		for _, tv := range ans.Tickets {
			if tv.ID == second {
				return tv.State == box.Checked
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !recorded(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			code, out, errOut := watch()
			t.Fatalf("the watching handset did not sync the second check (exit %d):\n%s\n%s", code, errOut, out)
		}
	}

	code, out, errOut = watch()
	assert.Contains(t, errOut, "waiting for the card")
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"event":"notification"`)
	assert.Contains(t, out, `"why":"notification"`)
	assert.NotContains(t, out, `"event":"error"`)
	code, _, errOut = serve()
	assert.Equal(t, exitOK, code, errOut)
}

// cardHolds reports whether the card image's file holds the ticket, by
// `card show --json` (the card is served: read its saved image).
func cardHolds(t *testing.T, r *roles, tv api.TicketView) bool {
	code, out, errOut := simtix(t, "card", "show", "--image", r.image, "--json")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, `"tickets"`)
	return strings.Contains(out, tv.ID.String())
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "waiting for %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}
