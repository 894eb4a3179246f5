package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/pcscd"
	"github.com/simtix/simtix/issuer"
)

// backgroundCmd is a long-lived command (card serve, sync --watch, a gate
// loop) run in-process.
type backgroundCmd struct {
	t           *testing.T
	args        []string
	cancel      context.CancelFunc
	out, errOut *lockedBuffer
	done        chan int
	stopped     bool
	code        int
}

// background runs a command until its Stop.
func background(t *testing.T, args ...string) *backgroundCmd {
	ctx, cancel := context.WithCancel(context.Background())
	b := &backgroundCmd{t: t, args: args, cancel: cancel, out: &lockedBuffer{}, errOut: &lockedBuffer{}, done: make(chan int, 1), code: -1}
	go func() { b.done <- run(ctx, args, b.out, b.errOut) }()
	t.Cleanup(func() { b.Stop() })
	return b
}

// Output is what the command printed so far.
func (b *backgroundCmd) Output() string { return b.out.String() }

// Stop interrupts the command as Ctrl-C does and returns its exit status
// and output.
func (b *backgroundCmd) Stop() (int, string, string) {
	if !b.stopped {
		b.stopped = true
		b.cancel()
		select {
		case b.code = <-b.done:
		case <-time.After(30 * time.Second):
			b.t.Errorf("%v did not stop: %s", b.args, b.errOut)
		}
	}
	return b.code, b.out.String(), b.errOut.String()
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
	code, _, errOut = serve.Stop()
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
	// A gate serving card after card: it checks the card in the field,
	// then waits for it to leave and for the next one.
	gateLoop := background(t, "gate", "--reader", d.ContactlessReader(0), "--json",
		"--issuer-keys", r.srv.File(issuer.KeySetFile), "--venue", "国家大剧院",
		"--now", "2026-12-05T19:16:00Z", "--timezone", "UTC", "--journal", t.TempDir()+"/gate.journal")
	waitFor(t, "the gate's verdict", func() bool {
		return strings.Contains(gateLoop.Output(), "\n}")
	})
	verdicts := decodeJSONStream[gateJSON](t, gateLoop.Output())
	require.Len(t, verdicts, 1)
	require.True(t, verdicts[0].Accepted, verdicts[0].Reason)
	second := verdicts[0].Ticket.ID
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
			code, out, errOut := watch.Stop()
			t.Fatalf("the watching handset did not sync the second check (exit %d):\n%s\n%s", code, errOut, out)
		}
	}

	// The card presented again: no ticket of this venue is left.
	code, _, errOut = serve.Stop()
	require.Equal(t, exitOK, code, errOut)
	for _, reader := range []string{d.ContactReader(0), d.ContactlessReader(0)} {
		require.NoError(t, d.WaitCard(ctx, reader, false), "the card gone from %s", reader)
	}
	serve = background(t, "card", "serve", "--image", r.image, "--vpcd", d.ContactAddr(0), "--contactless-vpcd", d.ContactlessAddr(0))
	waitFor(t, "the gate's second verdict", func() bool {
		return strings.Count(gateLoop.Output(), "\n}") >= 2
	})
	code, out, errOut = gateLoop.Stop()
	assert.Equal(t, exitOK, code, "an interrupted gate loop ends well: %s", errOut)
	verdicts = decodeJSONStream[gateJSON](t, out)
	require.Len(t, verdicts, 2)
	assert.False(t, verdicts[1].Accepted)
	assert.Contains(t, verdicts[1].Reason, "no ticket for this venue")

	code, out, errOut = watch.Stop()
	assert.Contains(t, errOut, "waiting for the card")
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"event":"notification"`)
	assert.Contains(t, out, `"why":"notification"`)
	assert.NotContains(t, out, `"event":"error"`)
	code, _, errOut = serve.Stop()
	assert.Equal(t, exitOK, code, errOut)
}

// cardHolds reports whether the card image's file holds the ticket. The
// card is served, its image locked (card show refuses it): read its last
// save without the lock.
func cardHolds(t *testing.T, r *roles, tv api.TicketView) bool {
	snap, err := emulator.ReadSnapshot(r.image)
	require.NoError(t, err)
	for _, st := range snap.Tickets {
		if st.Ticket.ID == tv.ID {
			return true
		}
	}
	return false
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

// decodeJSONStream decodes the JSON documents a command printed one after
// the other.
func decodeJSONStream[T any](t *testing.T, out string) []T {
	t.Helper()
	var all []T
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v T
		require.NoError(t, dec.Decode(&v), "in %s", out)
		all = append(all, v)
	}
	return all
}
