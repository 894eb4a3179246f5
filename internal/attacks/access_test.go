package attacks_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// TestTokensAcrossRoles: each token opens only its own doors. A holder's
// session is for its own card's tickets and events (another card's: 403)
// and for nothing of operators or gates (401); a session rewritten for
// another serial does not verify (401). The gate token cannot order or
// read tickets, the operator token cannot upload journals or read the deny
// list (401). Nothing is issued or moved.
func TestTokensAcrossRoles(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	a := certified(t, env, serialA)
	b := certified(t, env, serialB)
	a.order(t, 1)
	b.order(t, 1)
	require.NoError(t, env.Operator().SetMSISDN(t.Context(), b.serial, "+447700900123"))
	session, _, err := (&handset.Handset{Card: a.applet, Box: env.Client("")}).SignIn(t.Context())
	require.NoError(t, err)
	beforeA, beforeB, count := boxState(t, env, a.serial), boxState(t, env, b.serial), ticketCount(t, env)

	holder := env.Client(session)
	_, err = holder.Tickets(t.Context(), a.serial.String())
	require.NoError(t, err, "the holder sees its own card's tickets")

	order := api.OrderRequest{Carrier: a.serial.String(), IdempotencyKey: "attack", Tickets: []api.OrderTicket{
		{Type: 1, Seller: venue, Date: ticketfmt.DateOf(useTime), Time: ticketfmt.TimeOfDayOf(useTime), Price: 1}}}
	journalRec := []api.JournalRecord{madeUpRecord(t, beforeA.Tickets[0].ID, a.serial)}
	type call struct {
		what string
		do   func(c *apiclient.Client) error
	}
	calls := map[string]call{
		"order":          {"POST /v1/orders", func(c *apiclient.Client) error { _, err := c.Order(t.Context(), order); return err }},
		"tickets A":      {"GET A's tickets", func(c *apiclient.Client) error { _, err := c.Tickets(t.Context(), a.serial.String()); return err }},
		"tickets B":      {"GET B's tickets", func(c *apiclient.Client) error { _, err := c.Tickets(t.Context(), b.serial.String()); return err }},
		"tickets MSISDN": {"GET B's tickets by MSISDN", func(c *apiclient.Client) error { _, err := c.Tickets(t.Context(), "+447700900123"); return err }},
		"events B":       {"GET B's events", func(c *apiclient.Client) error { _, err := c.Events(t.Context(), b.serial, 0); return err }},
		"events A":       {"GET A's events", func(c *apiclient.Client) error { _, err := c.Events(t.Context(), a.serial, 0); return err }},
		"msisdn":         {"PUT A's MSISDN", func(c *apiclient.Client) error { return c.SetMSISDN(t.Context(), a.serial, "+447700900999") }},
		"journal":        {"POST /v1/gate/journal", func(c *apiclient.Client) error { _, err := c.Journal(t.Context(), journalRec); return err }},
		"deny":           {"GET /v1/gate/deny", func(c *apiclient.Client) error { _, err := c.Deny(t.Context()); return err }},
	}
	for _, tc := range []struct {
		who   string
		token string
		want  map[string]int
	}{
		{"A's session", session, map[string]int{"order": 401, "tickets B": 403, "tickets MSISDN": 401, "events B": 403,
			"msisdn": 401, "journal": 401, "deny": 401}},
		{"A's session rewritten for B", rewriteSession(t, session, b.serial), map[string]int{"tickets B": 401, "events B": 401}},
		{"the gate token", env.Keys.GateToken(), map[string]int{"order": 401, "tickets A": 401, "tickets B": 401,
			"tickets MSISDN": 401, "events A": 401, "msisdn": 401}},
		{"the operator token", env.Keys.OperatorToken(), map[string]int{"journal": 401, "deny": 401}},
		{"no token", "", map[string]int{"order": 401, "tickets A": 401, "tickets MSISDN": 401, "events A": 401,
			"msisdn": 401, "journal": 401, "deny": 401}},
		{"a guessed token", strings.Repeat("0", 64), map[string]int{"order": 401, "tickets A": 401, "journal": 401, "deny": 401}},
	} {
		c := env.Client(tc.token)
		for name, code := range tc.want {
			assertStatus(t, calls[name].do(c), code, tc.who+": "+calls[name].what)
		}
	}
	assert.Equal(t, beforeA, boxState(t, env, a.serial))
	assert.Equal(t, beforeB, boxState(t, env, b.serial))
	assert.Equal(t, count, ticketCount(t, env), "nothing issued")
	a.placed(t)
	b.placed(t)
}

// TestGuessedTicketIDs: IDs of tickets that are not the caller's, or made
// up. An exchange that gives or takes another card's ticket is 422 and
// moves nothing; another card's tickets are 403 to a holder. On the card,
// DELETE of a ticket it holds, or of a guessed ID, without a valid MAC is
// 6982 (the card says nothing of which IDs it holds: no 6A88 before the
// MAC), and with no MAC field 6A80; nothing changes.
func TestGuessedTicketIDs(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	a := certified(t, env, serialA)
	b := certified(t, env, serialB)
	ta := a.order(t, 1)[0]
	a.sync(t)
	tb := b.order(t, 1)[0] // in the box, due to B
	require.Equal(t, box.InBox, b.states(t)[tb])
	beforeA, beforeB := boxState(t, env, a.serial), boxState(t, env, b.serial)

	for _, ex := range []api.ExchangeRequest{{Give: ta, Take: tb}, {Give: tb, Take: ta}, {Give: ta, Take: randomID(t)}, {Give: randomID(t), Take: tb}} {
		_, err := post(t, env, a.serial, a.begin(t), false, &ex)
		assertStatus(t, err, http.StatusUnprocessableEntity, "exchange "+ex.Give.String()+" for "+ex.Take.String())
		assert.Equal(t, beforeA, boxState(t, env, a.serial))
		assert.Equal(t, beforeB, boxState(t, env, b.serial))
	}
	session, _, err := (&handset.Handset{Card: a.applet, Box: env.Client("")}).SignIn(t.Context())
	require.NoError(t, err)
	_, err = env.Client(session).Tickets(t.Context(), b.serial.String())
	assertStatus(t, err, http.StatusForbidden, "A's session on B's tickets")

	auth := a.auth(t)
	guessed := make([]byte, cardkeys.MACSize)
	_, _ = rand.Read(guessed)
	for _, exp := range []byte{cardproto.StateUnchecked, cardproto.StateChecked} {
		a.refusedCommand(t, cardproto.Delete(ta, exp, auth, guessed), apdu.SWSecurityStatus, "DELETE of a held ticket with a guessed MAC")
		a.refusedCommand(t, cardproto.Delete(randomID(t), exp, auth, guessed), apdu.SWSecurityStatus, "DELETE of a guessed ID with a guessed MAC")
		a.refusedCommand(t, cardproto.Delete(ta, exp, auth, make([]byte, cardkeys.MACSize)), apdu.SWSecurityStatus, "DELETE with a zero MAC")
		a.refusedCommand(t, cardproto.Delete(ta, exp, auth, nil), apdu.SWWrongData, "DELETE without a MAC")
	}
	assert.Equal(t, cardproto.StateUnchecked, a.onCard(t)[ta])
	assert.Equal(t, beforeA.Tickets, boxState(t, env, a.serial).Tickets, "the sign-in moved no ticket")
	a.placed(t)
	b.placed(t)
}

// TestForgedJournalRecords: whoever holds the gate token uploads checks
// that never happened, to deny tickets to their holders: a made-up receipt
// for a ticket on a registered card, a record naming another serial than
// the ticket's, and a guessed ticket ID. Each is rejected, the ticket
// stays where it was and stays off the deny list. The same for a ticket
// of a card the box has not registered yet (waiting in the box for its
// first sync): no gate can have checked it (the card has no certificate),
// so no record of it can be genuine.
func TestForgedJournalRecords(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	a := certified(t, env, serialA)
	b := certified(t, env, serialB)
	ta := a.order(t, 1)[0]
	a.sync(t)
	tb := b.order(t, 1)[0]
	c := newHolder(t, env, serialC) // never synced
	tc := c.order(t, 1)[0]
	require.False(t, registered(t, env, c.serial))
	require.Equal(t, box.InBox, c.states(t)[tc])

	for _, tt := range []struct {
		what   string
		h      *holder
		rec    api.JournalRecord
		ticket ticketfmt.ID
	}{
		{"a made-up receipt for a ticket on a card", a, madeUpRecord(t, ta, a.serial), ta},
		{"a made-up receipt for a ticket in the box", b, madeUpRecord(t, tb, b.serial), tb},
		{"a record naming another card", a, madeUpRecord(t, ta, b.serial), ta},
		{"a guessed ticket ID", a, madeUpRecord(t, randomID(t), a.serial), ticketfmt.ID{}},
		{"a made-up receipt for a ticket of a card never synced", c, madeUpRecord(t, tc, c.serial), tc},
	} {
		t.Run(tt.what, func(t *testing.T) {
			before := boxState(t, env, tt.h.serial)
			ans, err := env.Gate().Journal(t.Context(), []api.JournalRecord{tt.rec})
			require.NoError(t, err)
			assert.Zero(t, ans.Accepted, "accepted")
			assert.Len(t, ans.Rejected, 1, "rejected")
			after := boxState(t, env, tt.h.serial)
			assert.Equal(t, before, after, "the box changed")
			assert.NotContains(t, after.Deny, tt.ticket, "denied to its holder")
		})
	}
	a.placed(t)
	b.placed(t)
	// C's first sync delivers its ticket.
	c.placed(t)
	assert.Equal(t, box.OnCard, c.states(t)[tc])
}

// madeUpRecord is a journal record of a check that never happened: gate,
// time and nonce plausible, the receipt random.
func madeUpRecord(t *testing.T, id ticketfmt.ID, serial ticketfmt.Serial) api.JournalRecord {
	nonce := make([]byte, cardkeys.NonceSize)
	receipt := make([]byte, ticketfmt.SignatureSize)
	_, _ = rand.Read(nonce)
	_, _ = rand.Read(receipt)
	return api.JournalRecord{TicketID: id, Serial: serial, GateID: "47a7e5ff", Time: ticketfmt.DateTimeOf(gateNow).String(),
		Nonce: hex.EncodeToString(nonce), Receipt: hex.EncodeToString(receipt)}
}

// rewriteSession puts another serial into a holder's session token, keeping
// its MAC.
func rewriteSession(t *testing.T, session string, serial ticketfmt.Serial) string {
	p, tag, ok := strings.Cut(session, ".")
	require.True(t, ok)
	payload, err := base64.RawURLEncoding.DecodeString(p)
	require.NoError(t, err)
	require.Greater(t, len(payload), ticketfmt.SerialSize)
	copy(payload, serial[:])
	return base64.RawURLEncoding.EncodeToString(payload) + "." + tag
}

// ticketCount is the number of tickets the server holds.
func ticketCount(t *testing.T, env *systemtest.Env) map[box.State]int {
	var n map[box.State]int
	require.NoError(t, env.Store.View(t.Context(), func(tx store.Tx) error {
		var err error
		n, err = tx.CountTickets(t.Context())
		return err
	}))
	return n
}
