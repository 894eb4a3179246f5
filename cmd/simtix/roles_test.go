package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/ticketfmt"
)

const testSerial = "89860012345678901234"

// roles is a server run by the command line and a card personalised for it.
type roles struct {
	t     *testing.T
	srv   *testServer
	image string
}

func newRoles(t *testing.T, serverArgs ...string) *roles {
	tmp := t.TempDir()
	srv := startServer(t, filepath.Join(tmp, "data"), serverArgs...)
	r := &roles{t: t, srv: srv, image: filepath.Join(tmp, "card.img")}
	simtixOK(t, "card", "new", "--image", r.image, "--serial", testSerial, "--master-key", srv.File(issuer.MasterFile))
	return r
}

func (r *roles) order(extra ...string) api.OrderAnswer {
	args := append([]string{"order", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.OperatorTokenFile),
		"--carrier", testSerial, "--json"}, extra...)
	return decodeJSON[api.OrderAnswer](r.t, simtixOK(r.t, args...))
}

func (r *roles) sync(extra ...string) syncJSON {
	args := append([]string{"sync", "--server", r.srv.URL, "--image", r.image, "--json"}, extra...)
	return decodeJSON[syncJSON](r.t, simtixOK(r.t, args...))
}

// tickets lists the card's tickets as an operator, by state.
func (r *roles) tickets() (api.TicketsAnswer, map[box.State][]api.TicketView) {
	ans := decodeJSON[api.TicketsAnswer](r.t, simtixOK(r.t, "tickets", "--server", r.srv.URL,
		"--token-file", r.srv.File(issuer.OperatorTokenFile), "--carrier", testSerial, "--json"))
	by := map[box.State][]api.TicketView{}
	for _, tv := range ans.Tickets {
		by[tv.State] = append(by[tv.State], tv)
	}
	return ans, by
}

func (r *roles) gate(journal string, extra ...string) (int, string, string) {
	args := append([]string{"gate", "--image", r.image, "--issuer-keys", r.srv.File(issuer.KeySetFile),
		"--journal", journal, "--now", "2026-12-12T19:00:00Z", "--timezone", "UTC", "--once"}, extra...)
	return simtix(r.t, args...)
}

// TestRoles runs the whole method through the command line: the server,
// the card, an order before the card is known, the handset's syncs, the
// holder's and the operator's view, the gate with its journal and the
// server's deny list, and an exchange.
func TestRoles(t *testing.T) {
	ctx := context.Background()
	r := newRoles(t)
	serial, err := ticketfmt.ParseSerial(testSerial)
	require.NoError(t, err)

	// An order for a card the server has not seen yet goes to the box; the
	// same order again (same key) issues nothing.
	hall := []string{"--seller", "Simtix Hall", "--date", "2026-12-12", "--time", "19:30", "--price", "4200", "--seat", "A 1",
		"--idempotency-key", "hall-1"}
	first := r.order(hall...)
	assert.Equal(t, serial, first.Carrier)
	assert.Equal(t, map[string]int{"card": 0, "box": 1}, first.Summary)
	require.Len(t, first.Tickets, 1)
	assert.Equal(t, "box", first.Tickets[0].Route)
	hallID := first.Tickets[0].ID
	out := simtixOK(t, append([]string{"order", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.OperatorTokenFile),
		"--carrier", testSerial}, hall...)...)
	assert.Contains(t, out, hallID.String()+"  ")
	assert.Contains(t, out, "nothing issued again")

	for _, bad := range [][]string{
		{"--carrier", testSerial},
		{"--carrier", testSerial, "--file", "corpus", "--seller", "Simtix Hall"},
		{"--carrier", testSerial, "--seller", "Simtix Hall", "--date", "12/12/2026", "--time", "19:30"},
		{"--carrier", testSerial, "--seller", "Simtix Hall", "--date", "2026-12-12", "--time", "7pm"},
		{"--file", "corpus"},
	} {
		code, out, errOut := simtix(t, append([]string{"order", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.OperatorTokenFile)}, bad...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", bad, errOut)
		assert.Empty(t, out)
	}
	code, _, errOut := simtix(t, "order", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.GateTokenFile), "--carrier", testSerial, "--file", "corpus")
	assert.Equal(t, exitError, code, "the gate token is no operator's")
	assert.Contains(t, errOut, "401")

	// The first sync registers and certifies the card and stores the ticket.
	s := r.sync()
	assert.Equal(t, syncJSON{Serial: serial, Planned: 2, Applied: 2, Stored: 1, Free: s.Free, Counter: s.Counter, Epoch: s.Epoch}, s,
		"the certificate and one STORE, nothing refused, nothing waiting")
	assert.Positive(t, s.Free)
	assert.GreaterOrEqual(t, s.Epoch, uint32(2), "a round and the closing round")

	// The card is known now: an order fills its room and leaves the rest
	// in the box (split).
	second := r.order("--file", "corpus")
	assert.Positive(t, second.Summary["card"])
	assert.Positive(t, second.Summary["box"])
	assert.Equal(t, 24, second.Summary["card"]+second.Summary["box"])
	s = r.sync()
	assert.Equal(t, 1+second.Summary["card"], s.Stored, "the direct tickets are stored")
	assert.Equal(t, second.Summary["box"], s.Waiting)
	assert.Equal(t, s.Planned, s.Applied)
	assert.Empty(t, s.Refused)
	s = r.sync()
	assert.Zero(t, s.Planned, "a repeated sync changes nothing")
	assert.Equal(t, 1+second.Summary["card"], s.Stored)

	// The holder signed in with the card, and the operator, see the same.
	mine := decodeJSON[api.TicketsAnswer](t, simtixOK(t, "tickets", "--server", r.srv.URL, "--image", r.image, "--json"))
	all, by := r.tickets()
	assert.Equal(t, serial, mine.Carrier)
	assert.Len(t, mine.Tickets, 25)
	assert.ElementsMatch(t, all.Tickets, mine.Tickets)
	assert.Len(t, by[box.OnCard], s.Stored)
	assert.Len(t, by[box.InBox], s.Waiting)
	out = simtixOK(t, "tickets", "--server", r.srv.URL, "--image", r.image)
	assert.Contains(t, out, "card "+testSerial+": 25 tickets: 12 on the card, 13 in the box")
	for _, args := range [][]string{
		{"tickets", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.OperatorTokenFile)},
		{"tickets", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.OperatorTokenFile), "--image", r.image},
		{"tickets", "--server", r.srv.URL},
	} {
		code, _, errOut := simtix(t, args...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
	}

	// The gate: accepted once, uploads its journal, refuses the card the
	// second time.
	journal := filepath.Join(t.TempDir(), "gate.journal")
	code, out, errOut = r.gate(journal, "--venue", "Simtix Hall", "--gate-id", "0000 000A", "--json",
		"--server", r.srv.URL, "--token-file", r.srv.File(issuer.GateTokenFile))
	require.Equal(t, exitOK, code, errOut)
	assert.NotContains(t, errOut, "failed")
	v := decodeJSON[gateJSON](t, out)
	assert.True(t, v.Accepted)
	assert.Empty(t, v.Reason)
	require.NotNil(t, v.Ticket)
	assert.Equal(t, hallID, v.Ticket.ID)
	assert.Equal(t, "A 1", v.Ticket.Seat)
	require.NotNil(t, v.Serial)
	assert.Equal(t, serial, *v.Serial)
	assert.Equal(t, "0000000a", v.GateID)
	assert.Equal(t, "2026-12-12T19:00:00", v.Time)
	assert.Equal(t, 3, v.APDUs, "SELECT, FIND, CHECK")
	require.NotNil(t, v.Timing)
	assert.Equal(t, 106, v.Timing.RateKbps)
	assert.Positive(t, v.Timing.CheckMS)
	assert.Greater(t, v.Timing.FromArrivalMS, v.Timing.CheckMS)
	assert.Positive(t, v.Timing.Frames)
	gc, err := apiclient.New(r.srv.URL, readFile(t, r.srv.File(issuer.GateTokenFile)), nil)
	require.NoError(t, err)
	deny, err := gc.Deny(ctx)
	require.NoError(t, err)
	assert.Equal(t, []ticketfmt.ID{hallID}, deny, "the journal was uploaded")

	code, out, errOut = r.gate(journal, "--venue", "Simtix Hall", "--gate-id", "0000000a", "--json")
	assert.Equal(t, exitRefused, code, errOut)
	v = decodeJSON[gateJSON](t, out)
	assert.False(t, v.Accepted)
	assert.Contains(t, v.Reason, "no ticket for this venue")
	assert.Contains(t, errOut, "refused")
	code, out, _ = r.gate(journal, "--venue", "Nowhere Hall")
	assert.Equal(t, exitRefused, code)
	assert.True(t, strings.HasPrefix(out, "REFUSED"), out)
	assert.Contains(t, out, "no ticket for this venue")
	code, _, _ = r.gate(journal, "--venue", "Simtix Hall", "--now", "2026-12-13T19:00:00Z")
	assert.Equal(t, exitRefused, code, "another day")

	// Usage errors: exit 2, nothing checked.
	for _, bad := range [][]string{
		{"--venue", "Simtix Hall", "--window", "garbage"},
		{"--venue", "Simtix Hall", "--window", "2h,x"},
		{"--venue", "Simtix Hall", "--gate-id", "zz"},
		{"--venue", "Simtix Hall", "--gate-id", "0a"},
		{"--venue", "Simtix Hall", "--reader", "Some Reader"},
		{"--venue", "Simtix Hall", "--now", "yesterday"},
		{"--venue", "Simtix Hall", "--rate", "100"},
		{"--venue", "Simtix Hall", "--timezone", "Mars/Olympus"},
		{"--venue", "Simtix Hall", "--server", r.srv.URL},
		{"--gate-id", "zz", "--venue", "Simtix Hall", "--issuer-keys", filepath.Join(t.TempDir(), "missing.pem")},
		{},
	} {
		code, out, errOut := r.gate(journal, bad...)
		assert.Equal(t, exitUsage, code, "%v: %s", bad, errOut)
		assert.Empty(t, out, "%v", bad)
	}
	code, _, errOut = r.gate(journal, "--venue", "Simtix Hall", "--issuer-keys", filepath.Join(t.TempDir(), "missing.pem"))
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "missing.pem")

	// The next sync deletes the checked ticket (and would move the soonest
	// from the box, were there room for it).
	before := s
	s = r.sync()
	assert.Zero(t, s.Checked)
	assert.Equal(t, before.Stored+before.Waiting-1, s.Stored+s.Waiting, "one ticket fewer on the card or in the box")
	assert.Greater(t, s.Free, before.Free)
	_, by = r.tickets()
	require.Len(t, by[box.Checked], 1)
	assert.Equal(t, hallID, by[box.Checked][0].ID)
	assert.Equal(t, "0000000a", by[box.Checked][0].CheckedBy)

	// An exchange: the holder takes a ticket from the box in place of one
	// on the card (a larger one, so that it fits).
	give, take := by[box.OnCard][0], by[box.InBox][0]
	for _, tv := range by[box.OnCard] {
		if tv.Size > give.Size {
			give = tv
		}
	}
	for _, tv := range by[box.InBox] {
		if tv.Size < take.Size {
			take = tv
		}
	}
	require.LessOrEqual(t, take.Size, give.Size)
	s = r.sync("--give", give.ID.String(), "--take", take.ID.String())
	assert.Empty(t, s.Refused)
	assert.Equal(t, s.Planned, s.Applied)
	_, after := r.tickets()
	assert.Contains(t, after[box.InBox], withState(give, box.InBox))
	assert.Contains(t, after[box.OnCard], withState(take, box.OnCard))

	// An exchange the box cannot plan: exit 1, the box says why.
	code, _, errOut = simtix(t, "sync", "--server", r.srv.URL, "--image", r.image, "--give", take.ID.String(), "--take", take.ID.String())
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "exchange")
	for _, bad := range [][]string{
		{"--give", give.ID.String()},
		{"--give", "zz", "--take", take.ID.String()},
		{"--give", give.ID.String(), "--take", take.ID.String(), "--watch"},
		{"--reader", "Some Reader"},
	} {
		code, _, errOut := simtix(t, append([]string{"sync", "--server", r.srv.URL, "--image", r.image}, bad...)...)
		assert.Equal(t, exitUsage, code, "%v: %s", bad, errOut)
	}

	assert.Equal(t, exitOK, r.srv.Stop())
	assert.NotContains(t, r.srv.Stderr.String(), "level=ERROR")
}

func withState(tv api.TicketView, s box.State) api.TicketView {
	tv.State = s
	return tv
}

// readFile reads a token file.
func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}
