package gate_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/ticketfmt"
)

const venue = "Royal Albert Hall"

// useTime is when the test tickets are for (venue local time, UTC).
var useTime = time.Date(2026, 12, 12, 19, 30, 0, 0, time.UTC)

// fixture is a certified card holding tickets for the venue, and a gate
// configuration that admits them.
type fixture struct {
	env  *systemtest.Env
	card *emulator.Card
	ids  []ticketfmt.ID
	cfg  gate.Config
	j    *journal.Journal
}

func newFixture(t *testing.T, tickets ...api.OrderTicket) *fixture {
	ctx := context.Background()
	env := systemtest.New(t, systemtest.Options{})
	card := env.NewCard("89860012345678901234", 0)
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: env.Client("")}
	res, err := h.Sync(ctx, nil) // registers and certifies the card
	require.NoError(t, err)
	if len(tickets) == 0 {
		tickets = []api.OrderTicket{{Type: 1, Seller: venue, Date: ticketfmt.DateOf(useTime), Time: ticketfmt.TimeOfDayOf(useTime), Price: 4500, Seat: "K 12"}}
	}
	ans, err := env.Operator().Order(ctx, api.OrderRequest{Carrier: res.Serial.String(), IdempotencyKey: "gate-test", Tickets: tickets})
	require.NoError(t, err)
	_, err = h.Sync(ctx, nil)
	require.NoError(t, err)
	f := &fixture{env: env, card: card}
	for _, tk := range ans.Tickets {
		f.ids = append(f.ids, tk.ID)
	}
	f.j, err = journal.Open(filepath.Join(t.TempDir(), "gate.journal"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.j.Close() })
	f.cfg = gate.Config{Keys: env.Keys.KeySet(), Venue: venue, Location: time.UTC, ID: [4]byte{0xA1, 0xB2, 0xC3, 0xD4},
		Now: func() time.Time { return useTime.Add(-20 * time.Minute) }, Journal: f.j}
	return f
}

func (f *fixture) gate(t *testing.T) *gate.Gate {
	g, err := gate.New(f.cfg)
	require.NoError(t, err)
	return g
}

// state reads a ticket's state on the card through the contact interface.
func (f *fixture) state(t *testing.T, id ticketfmt.ID) byte {
	a := hostlib.NewApplet(f.card.Port(applet.Contact), hostlib.ClientOptions{})
	_, err := a.Select(context.Background())
	require.NoError(t, err)
	ts, err := a.Read(context.Background(), id)
	require.NoError(t, err)
	return ts.State
}

func TestAccepted(t *testing.T) {
	f := newFixture(t)
	v, err := f.gate(t).Check(context.Background(), f.card.Port(applet.Contactless))
	require.NoError(t, err)
	require.True(t, v.Accepted, "%v", v.Reason)
	assert.NoError(t, v.Reason)
	assert.Equal(t, 3, v.APDUs)
	assert.Equal(t, []string{"SELECT", "FIND", "CHECK"}, []string{v.Exchanges[0].Op, v.Exchanges[1].Op, v.Exchanges[2].Op})
	assert.Equal(t, f.ids[0], v.Ticket.ID)
	assert.Equal(t, cardproto.StateChecked, f.state(t, f.ids[0]))
	require.NotNil(t, v.Record)
	assert.Equal(t, f.cfg.ID, v.Record.Gate)
	assert.Equal(t, ticketfmt.DateTimeOf(useTime.Add(-20*time.Minute)), v.Record.Time)
	assert.Equal(t, []journal.Record{*v.Record}, f.j.Records(), "journaled before the verdict")

	// The nonces are fresh: a second gate's CHECK of another ticket
	// differs; the same card presented again has nothing left.
	v, err = f.gate(t).Check(context.Background(), f.card.Port(applet.Contactless))
	require.NoError(t, err)
	assert.False(t, v.Accepted)
	assert.ErrorIs(t, v.Reason, gate.ErrNoTicket)
}

func TestRefusalsLeaveTheTicketUnchecked(t *testing.T) {
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		change func(f *fixture)
		setup  func(f *fixture, g *gate.Gate)
		want   error
	}{
		{"unknown issuer", func(f *fixture) {
			f.cfg.Keys, _ = ticketfmt.NewKeySet(&stranger.PublicKey)
		}, nil, gate.ErrCertificate},
		{"another venue", func(f *fixture) { f.cfg.Venue = "Odeon Leicester Square" }, nil, gate.ErrNoTicket},
		{"too early", func(f *fixture) {
			f.cfg.Now = func() time.Time { return useTime.Add(-3 * time.Hour) }
		}, nil, gate.ErrTooEarly},
		{"too late", func(f *fixture) {
			f.cfg.Now = func() time.Time { return useTime.Add(90 * time.Minute) }
		}, nil, gate.ErrTooLate},
		{"another day", func(f *fixture) {
			f.cfg.Now = func() time.Time { return useTime.AddDate(0, 0, 1) }
		}, nil, gate.ErrNoTicket},
		{"another type", func(f *fixture) {
			typ := uint8(3)
			f.cfg.Type = &typ
		}, nil, gate.ErrNoTicket},
		{"deny list", nil, func(f *fixture, g *gate.Gate) {
			g.SetDenyList([]ticketfmt.ID{f.ids[0]})
		}, gate.ErrDenied},
		{"journal", func(f *fixture) {
			f.cfg.Journal = fakeJournal{f.ids[0]}
		}, nil, gate.ErrJournaled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.change != nil {
				tc.change(f)
			}
			g := f.gate(t)
			if tc.setup != nil {
				tc.setup(f, g)
			}
			v, err := g.Check(context.Background(), f.card.Port(applet.Contactless))
			require.NoError(t, err)
			assert.False(t, v.Accepted)
			assert.ErrorIs(t, v.Reason, tc.want)
			assert.Nil(t, v.Record)
			for _, x := range v.Exchanges {
				assert.NotEqual(t, "CHECK", x.Op, "a refused ticket is never sent CHECK")
			}
			assert.Equal(t, cardproto.StateUnchecked, f.state(t, f.ids[0]))
			assert.Zero(t, f.j.Len())
		})
	}
}

// fakeJournal has one ticket and takes nothing.
type fakeJournal struct{ id ticketfmt.ID }

func (j fakeJournal) Has(id ticketfmt.ID) bool { return id == j.id }
func (j fakeJournal) Append(journal.Record) error {
	return errors.New("fakeJournal: append")
}

func TestNoCertificate(t *testing.T) {
	f := newFixture(t)
	other := f.env.NewCard("89860099999999999999", 0) // never synced
	v, err := f.gate(t).Check(context.Background(), other.Port(applet.Contactless))
	require.NoError(t, err)
	assert.ErrorIs(t, v.Reason, gate.ErrNoCertificate)
}

func TestLostAnswerIsRetried(t *testing.T) {
	f := newFixture(t)
	port := f.card.Port(applet.Contactless)
	lossy := hostlib.Faults(port, 0, hostlib.FaultAt(3, hostlib.DropResponse)) // CHECK's answer
	v, err := f.gate(t).Check(context.Background(), lossy)
	require.NoError(t, err)
	require.True(t, v.Accepted, "%v", v.Reason)
	assert.Equal(t, 4, v.APDUs, "CHECK sent again")
	assert.Equal(t, 1, f.j.Len())
	assert.Equal(t, cardproto.StateChecked, f.state(t, f.ids[0]))
}

func TestCardTornAwayFinishesOnReturn(t *testing.T) {
	f := newFixture(t)
	g := f.gate(t)
	port := f.card.Port(applet.Contactless)
	gone := hostlib.Faults(port, 0, func(n int, _ []byte) hostlib.Fault {
		if n >= 3 {
			if n == 3 {
				return hostlib.RemoveAfter // the card committed CHECK
			}
			return hostlib.RemoveBefore
		}
		return hostlib.Pass
	})
	_, err := g.Check(context.Background(), gone)
	require.ErrorIs(t, err, hostlib.ErrCardRemoved)
	assert.Equal(t, cardproto.StateChecked, f.state(t, f.ids[0]), "the card committed")
	assert.Zero(t, f.j.Len(), "not admitted yet")

	// Presented again: FIND would find nothing; the gate finishes its check.
	v, err := g.Check(context.Background(), port)
	require.NoError(t, err)
	require.True(t, v.Accepted, "%v", v.Reason)
	assert.Equal(t, f.ids[0], v.Record.TicketID)
	assert.Equal(t, 1, f.j.Len())
}

// liar is a device that is not the card: it answers SELECT with a card's
// certificate and FIND with a skimmed ticket, and CHECK with what it
// likes.
type liar struct {
	mu      sync.Mutex
	fci     []byte
	found   []byte
	receipt []byte
}

func (l *liar) Transmit(_ context.Context, cmd []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := []byte{0x90, 0x00}
	switch cmd[1] {
	case 0xA4:
		return append(append([]byte(nil), l.fci...), ok...), nil
	case cardproto.InsFind:
		return append(append([]byte(nil), l.found...), ok...), nil
	case cardproto.InsCheck:
		return append(append([]byte{0x9D, 0x40}, l.receipt...), ok...), nil
	}
	return []byte{0x6D, 0x00}, nil
}

// skim reads what a device in range of the card can: the FCI and the
// ticket as FIND answers them.
func skim(t *testing.T, f *fixture, card *emulator.Card) *liar {
	ctx := context.Background()
	l := &liar{receipt: bytes.Repeat([]byte{0x42}, 64)}
	port := card.Port(applet.Contactless)
	sel, err := cardproto.Select().Bytes()
	require.NoError(t, err)
	r, err := port.Transmit(ctx, sel)
	require.NoError(t, err)
	l.fci = r[:len(r)-2]
	find, err := cardproto.Find(cardproto.Query{Seller: venue, Date: ticketfmt.DateOf(useTime)}).Bytes()
	require.NoError(t, err)
	if r, err = port.Transmit(ctx, find); err == nil && len(r) > 2 {
		l.found = r[:len(r)-2]
	}
	return l
}

func TestACopyGetsNobodyIn(t *testing.T) {
	f := newFixture(t)
	l := skim(t, f, f.card)
	v, err := f.gate(t).Check(context.Background(), l)
	require.NoError(t, err)
	assert.False(t, v.Accepted)
	assert.ErrorIs(t, v.Reason, gate.ErrReceipt, "a copy cannot sign")
	assert.Zero(t, f.j.Len())
	assert.Equal(t, cardproto.StateUnchecked, f.state(t, f.ids[0]), "the genuine card is untouched")
}

func TestATicketOnAnotherCardsCertificate(t *testing.T) {
	f := newFixture(t)
	// Another genuine, certified card of the same issuer.
	other := f.env.NewCard("89860011111111111111", 0)
	h := &handset.Handset{Card: hostlib.NewApplet(other.Port(applet.Contact), hostlib.ClientOptions{}), Box: f.env.Client("")}
	_, err := h.Sync(context.Background(), nil)
	require.NoError(t, err)
	l := skim(t, f, f.card)
	l.fci = skim(t, f, other).fci // the other card's certificate
	v, err := f.gate(t).Check(context.Background(), l)
	require.NoError(t, err)
	assert.ErrorIs(t, v.Reason, gate.ErrBinding)
}

func TestANeverCommittingCardGetsNobodyIn(t *testing.T) {
	f := newFixture(t)
	l := skim(t, f, f.card)
	// The device forwards CHECK to a card that answers but does not
	// commit: emulate with a receipt for another nonce from the real card.
	port := f.card.Port(applet.Contactless)
	g := f.gate(t)
	var sent []byte
	relay := hostlib.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		if cmd[1] == cardproto.InsCheck {
			sent = append([]byte(nil), cmd...)
			return l.Transmit(ctx, cmd)
		}
		return port.Transmit(ctx, cmd)
	})
	v, err := g.Check(context.Background(), relay)
	require.NoError(t, err)
	require.NotNil(t, sent)
	assert.ErrorIs(t, v.Reason, gate.ErrReceipt)
	assert.Zero(t, f.j.Len())
}

// TestALostAnswerThenAResetStaysPending: CHECK's answer is lost (the card
// committed), the retry meets a card reset and the card then leaves: the
// gate must keep the check pending and finish it on the next presentation.
func TestALostAnswerThenAResetStaysPending(t *testing.T) {
	f := newFixture(t)
	g := f.gate(t)
	port := f.card.Port(applet.Contactless)
	n := 0
	flaky := hostlib.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		n++
		switch {
		case n == 3: // CHECK reaches the card; its answer is lost
			if _, err := port.Transmit(ctx, cmd); err != nil {
				return nil, err
			}
			return nil, hostlib.ErrResponseLost
		case n == 4:
			return nil, hostlib.ErrCardReset
		case n > 4:
			return nil, hostlib.ErrCardRemoved
		}
		return port.Transmit(ctx, cmd)
	})
	_, err := g.Check(context.Background(), flaky)
	require.ErrorIs(t, err, hostlib.ErrCardRemoved)
	assert.Equal(t, cardproto.StateChecked, f.state(t, f.ids[0]))

	v, err := g.Check(context.Background(), port)
	require.NoError(t, err)
	require.True(t, v.Accepted, "%v", v.Reason)
	assert.Equal(t, 1, f.j.Len())
}

// TestACardResetIsSelectedAgain: a reset between CHECK's attempts is met
// with a new SELECT, and the check goes through in the same presentation.
func TestACardResetIsSelectedAgain(t *testing.T) {
	f := newFixture(t)
	port := f.card.Port(applet.Contactless)
	n := 0
	resetOnce := hostlib.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		n++
		if n == 3 { // CHECK: another program reset the card first
			return nil, hostlib.ErrCardReset
		}
		return port.Transmit(ctx, cmd)
	})
	v, err := f.gate(t).Check(context.Background(), resetOnce)
	require.NoError(t, err)
	require.True(t, v.Accepted, "%v", v.Reason)
	assert.Equal(t, []string{"SELECT", "FIND", "CHECK", "SELECT", "CHECK"}, ops(v))
}

func ops(v gate.Verdict) []string {
	var out []string
	for _, x := range v.Exchanges {
		out = append(out, x.Op)
	}
	return out
}
