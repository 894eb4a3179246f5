package attacks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/placement"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

// The serials of the cards the tests use: A is the victim's, B another
// holder's (or the attacker's own genuine card), C one the box has never
// seen.
const (
	serialA = "89860012345678901234"
	serialB = "89860011111111111111"
	serialC = "89860099999999999999"
)

// venue is where every test ticket is for; useTime is when (UTC, the venue's
// time zone in these tests); gateNow is the gates' clock, inside the window.
const venue = "Royal Albert Hall"

var (
	useTime = time.Date(2026, 12, 12, 19, 30, 0, 0, time.UTC)
	gateNow = useTime.Add(-20 * time.Minute)
)

// holder is one card and its handset: the card lives in memory (ram), so
// that a test can compare or copy its non-volatile memory byte for byte;
// the handset reaches its contact interface through a tap that keeps the
// authorised commands the card accepted.
type holder struct {
	env    *systemtest.Env
	serial ticketfmt.Serial
	ram    *nvm.RAM
	card   *emulator.Card
	tap    *tap
	applet *hostlib.Applet
	hs     *handset.Handset
	// raw holds the signed tickets ordered through order, by ID.
	raw map[ticketfmt.ID][]byte
	// orders counts the orders, for their idempotency keys.
	orders int
}

// newHolder personalises a card with the server's master secret, powers
// both interfaces on and gives it a handset. The box has not seen it yet.
func newHolder(t *testing.T, env *systemtest.Env, serialHex string) *holder {
	t.Helper()
	ram, err := emulator.Personalise(env.Personalisation(serialHex, 0))
	require.NoError(t, err)
	card, err := emulator.New(ram, emulator.Options{})
	require.NoError(t, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := card.PowerOn(t.Context(), i)
		require.NoError(t, err)
	}
	serial, err := ticketfmt.ParseSerial(serialHex)
	require.NoError(t, err)
	tp := &tap{next: card.Port(applet.Contact)}
	a := hostlib.NewApplet(tp, hostlib.ClientOptions{})
	return &holder{env: env, serial: serial, ram: ram, card: card, tap: tp, applet: a,
		hs: &handset.Handset{Card: a, Box: env.Client("")}, raw: map[ticketfmt.ID][]byte{}}
}

// restore makes another card of h's card memory image (memory), powered
// on both interfaces: a perfect clone, key included.
func (h *holder) restore(t *testing.T, image []byte) *emulator.Card {
	t.Helper()
	ram, err := nvm.RAMFromBytes(h.ram.PageSize(), image)
	require.NoError(t, err)
	clone, err := emulator.New(ram, emulator.Options{})
	require.NoError(t, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := clone.PowerOn(t.Context(), i)
		require.NoError(t, err)
	}
	return clone
}

// certified returns a holder whose card has synced once: registered with
// the box and certified.
func certified(t *testing.T, env *systemtest.Env, serialHex string) *holder {
	t.Helper()
	h := newHolder(t, env, serialHex)
	h.sync(t)
	fci, err := h.applet.Select(t.Context())
	require.NoError(t, err)
	require.NotNil(t, fci.Certificate, "the first sync certifies the card")
	return h
}

// sync runs one honest sync through the handset and requires that the
// card applied the whole plan.
func (h *holder) sync(t *testing.T) handset.Result {
	t.Helper()
	res, err := h.hs.Sync(t.Context(), nil)
	require.NoError(t, err)
	require.Zero(t, res.Refused, "the card refused a step of an honest plan")
	require.Equal(t, res.Planned, res.Steps)
	return res
}

// order orders n tickets for the card, for the venue, the first at useTime
// and each next one 10 minutes later, and returns their IDs in that order.
func (h *holder) order(t *testing.T, n int) []ticketfmt.ID {
	t.Helper()
	h.orders++
	var lines []api.OrderTicket
	for i := range n {
		at := useTime.Add(time.Duration(i) * 10 * time.Minute)
		lines = append(lines, api.OrderTicket{Type: 1, Seller: venue, Date: ticketfmt.DateOf(at),
			Time: ticketfmt.TimeOfDayOf(at), Price: 4500, Seat: fmt.Sprintf("K %d", i+1)})
	}
	ans, err := h.env.Operator().Order(t.Context(), api.OrderRequest{Carrier: h.serial.String(),
		IdempotencyKey: fmt.Sprintf("%v-%d", h.serial, h.orders), Tickets: lines})
	require.NoError(t, err)
	ids := make([]ticketfmt.ID, len(ans.Tickets))
	for i, tk := range ans.Tickets {
		ids[i] = tk.ID
		h.raw[tk.ID] = unhex(t, tk.Ticket)
	}
	return ids
}

// memory returns a copy of the card's whole non-volatile memory.
func (h *holder) memory() []byte { return bytes.Clone(h.ram.Bytes()) }

// snapshot returns the card's decoded state.
func (h *holder) snapshot(t *testing.T) applet.Snapshot {
	t.Helper()
	s, err := h.card.Snapshot()
	require.NoError(t, err)
	return s
}

// auth returns an authorisation for the card's current epoch and counter:
// the only one the card can accept now.
func (h *holder) auth(t *testing.T) cardkeys.Authorisation {
	s := h.snapshot(t)
	return cardkeys.Authorisation{Epoch: s.Epoch, Counter: s.Counter}
}

// keys returns the card's keys, which only the box (and a test) can derive.
func (h *holder) keys(t *testing.T) cardkeys.Keys {
	k, err := cardkeys.Derive(h.env.Keys.Master(), h.serial)
	require.NoError(t, err)
	return k
}

// send sends one command APDU to the card's contact interface, around the
// handset's tap, and returns the card's status word.
func (h *holder) send(t *testing.T, cmd []byte) apdu.StatusWord {
	t.Helper()
	return transmit(t, h.card.Port(applet.Contact), cmd)
}

// sendCommand is send for a built command.
func (h *holder) sendCommand(t *testing.T, cmd apdu.Command) apdu.StatusWord {
	t.Helper()
	b, err := cmd.Bytes()
	require.NoError(t, err)
	return h.send(t, b)
}

// refused sends cmd and requires that the card answers want and that its
// memory is byte for byte what it was.
func (h *holder) refused(t *testing.T, cmd []byte, want apdu.StatusWord, what string) {
	t.Helper()
	before := h.memory()
	got := h.send(t, cmd)
	assert.Equal(t, want, got, "%s: card answered %v", what, got)
	assert.True(t, bytes.Equal(before, h.memory()), "%s: the card's memory changed", what)
}

// refusedCommand is refused for a built command.
func (h *holder) refusedCommand(t *testing.T, cmd apdu.Command, want apdu.StatusWord, what string) {
	t.Helper()
	b, err := cmd.Bytes()
	require.NoError(t, err)
	h.refused(t, b, want, what)
}

// transmit sends cmd and returns the status word of the answer.
func transmit(t *testing.T, port hostlib.Transport, cmd []byte) apdu.StatusWord {
	t.Helper()
	resp, err := port.Transmit(t.Context(), cmd)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(resp), 2)
	return apdu.StatusWord(resp[len(resp)-2])<<8 | apdu.StatusWord(resp[len(resp)-1])
}

// answers is one BEGIN SYNC over a challenge of the box, and the LIST sent
// right after it: what a handset forwards to the box.
type answers struct {
	challenge string
	e4, list  []byte
}

// begin asks the box for a challenge and has the card answer it.
func (h *holder) begin(t *testing.T) answers {
	t.Helper()
	ch, err := h.env.Client("").Challenge(t.Context(), h.serial)
	require.NoError(t, err)
	return h.answer(t, ch.Challenge)
}

// answer has the card answer a given challenge with BEGIN SYNC and LIST.
func (h *holder) answer(t *testing.T, challenge string) answers {
	t.Helper()
	var c [cardkeys.ChallengeSize]byte
	copy(c[:], unhex(t, challenge))
	_, err := h.applet.Select(t.Context())
	require.NoError(t, err)
	_, e4, err := h.applet.BeginSync(t.Context(), c)
	require.NoError(t, err)
	_, list, err := h.applet.List(t.Context())
	require.NoError(t, err)
	return answers{challenge: challenge, e4: e4, list: list}
}

// post sends a card's answers to the box for serial, as a sync round.
func post(t *testing.T, env *systemtest.Env, serial ticketfmt.Serial, a answers, final bool, ex *api.ExchangeRequest) (api.SyncAnswer, error) {
	req := syncRequest(a, final)
	req.Exchange = ex
	return env.Client("").Sync(t.Context(), serial, req)
}

// syncRequest is the request that carries a card's answers to the box.
func syncRequest(a answers, final bool) api.SyncRequest {
	return api.SyncRequest{Challenge: a.challenge, BeginSync: hex.EncodeToString(a.e4),
		List: hex.EncodeToString(a.list), Final: final}
}

// round is one honest round of a sync: challenge, BEGIN SYNC, LIST and the
// box's answer (its plan, unless final).
func (h *holder) round(t *testing.T, final bool) api.SyncAnswer {
	t.Helper()
	ans, err := post(t, h.env, h.serial, h.begin(t), final, nil)
	require.NoError(t, err)
	return ans
}

// run applies a plan's steps to the card, through the handset's tap.
func (h *holder) run(t *testing.T, steps []api.Step) {
	t.Helper()
	for _, st := range steps {
		_, err := h.applet.Do(t.Context(), st.Op, stepCommand(t, st))
		require.NoError(t, err, "step %s %s", st.Op, st.Ticket)
	}
}

// stepCommand builds a plan step's command APDU, as the handset does.
func stepCommand(t *testing.T, st api.Step) apdu.Command {
	t.Helper()
	a, err := cardkeys.ParseAuthorisation(unhex(t, st.Auth))
	require.NoError(t, err)
	mac, obj := unhex(t, st.MAC), unhex(t, st.Object)
	switch st.Op {
	case string(box.OpCertificate):
		return cardproto.PutCertificate(obj, a, mac)
	case string(box.OpStore):
		return cardproto.Store(obj, a, mac)
	case string(box.OpDelete):
		id, err := ticketfmt.ParseID(st.Ticket)
		require.NoError(t, err)
		require.NotNil(t, st.ExpectedState)
		return cardproto.Delete(id, *st.ExpectedState, a, mac)
	}
	t.Fatalf("unknown step %q", st.Op)
	return apdu.Command{}
}

// stepAuth returns a plan step's authorisation.
func stepAuth(t *testing.T, st api.Step) cardkeys.Authorisation {
	a, err := cardkeys.ParseAuthorisation(unhex(t, st.Auth))
	require.NoError(t, err)
	return a
}

// ops lists the operations of a plan's steps.
func ops(steps []api.Step) []string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st.Op + " " + st.Ticket
	}
	return out
}

// states returns where the box has each of the card's tickets.
func (h *holder) states(t *testing.T) map[ticketfmt.ID]box.State {
	t.Helper()
	return h.env.States(t, h.serial)
}

// placed syncs the card honestly and requires the central promise: every
// unchecked ticket on the card or in the box, never both and never
// neither, nothing in flight, and no checked ticket left on the card.
func (h *holder) placed(t *testing.T) {
	t.Helper()
	h.sync(t)
	h.inPlace(t, nil)
}

// inPlace checks the placement without syncing, leaving the tickets of
// ignore out of the card's file (tickets the box never issued).
func (h *holder) inPlace(t *testing.T, ignore map[ticketfmt.ID]bool) {
	t.Helper()
	snap := h.snapshot(t)
	kept := snap.Tickets[:0:0]
	for _, st := range snap.Tickets {
		if !ignore[st.Ticket.ID] {
			kept = append(kept, st)
		}
	}
	snap.Tickets = kept
	view, err := h.env.Operator().Tickets(t.Context(), h.serial.String())
	require.NoError(t, err)
	require.NoError(t, placement.Check(snap, view.Tickets))
}

// onCard returns the card's tickets and their states, by ID.
func (h *holder) onCard(t *testing.T) map[ticketfmt.ID]byte {
	out := map[ticketfmt.ID]byte{}
	for _, st := range h.snapshot(t).Tickets {
		out[st.Ticket.ID] = st.State
	}
	return out
}

// boxView is everything the server keeps about one card: its row, its
// tickets with their authorisations, their gate checks, and the deny list.
type boxView struct {
	Card    *store.Card
	Tickets []*box.Ticket
	Checks  map[ticketfmt.ID][]store.Check
	Deny    []ticketfmt.ID
}

// boxState reads the server's store directly.
func boxState(t *testing.T, env *systemtest.Env, serial ticketfmt.Serial) boxView {
	t.Helper()
	var v boxView
	err := env.Store.View(t.Context(), func(tx store.Tx) error {
		c, err := tx.Card(t.Context(), serial)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			v.Card = c
		}
		if v.Tickets, err = tx.TicketsOf(t.Context(), serial); err != nil {
			return err
		}
		v.Checks = map[ticketfmt.ID][]store.Check{}
		for _, tk := range v.Tickets {
			if v.Checks[tk.ID], err = tx.ChecksOf(t.Context(), tk.ID); err != nil {
				return err
			}
		}
		v.Deny, err = tx.DenyList(t.Context())
		return err
	})
	require.NoError(t, err)
	return v
}

// registered reports whether the box has registered the card.
func registered(t *testing.T, env *systemtest.Env, serial ticketfmt.Serial) bool {
	v := boxState(t, env, serial)
	return v.Card != nil && v.Card.Registered
}

// assertStatus requires an error answer of the server with HTTP status
// code.
func assertStatus(t *testing.T, err error, code int, what string) {
	t.Helper()
	var ae *apiclient.Error
	if assert.ErrorAs(t, err, &ae, "%s: want HTTP %d", what, code) {
		assert.Equal(t, code, ae.Status, "%s: %s", what, ae.Message)
	}
}

// tap is the handset's line to the card, as a rogue handset or an
// eavesdropper sees it: it passes every command on, keeps each authorised
// command (STORE, DELETE, PUT CERTIFICATE) that the card accepted, and
// calls accepted with it, when set, before the handset goes on.
type tap struct {
	next     hostlib.Transport
	mu       sync.Mutex
	kept     [][]byte
	accepted func(cmd []byte)
}

// Transmit implements hostlib.Transport.
func (p *tap) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := p.next.Transmit(ctx, cmd)
	if err != nil || len(cmd) < 4 || len(resp) < 2 || cmd[0]&0x10 != 0 {
		return resp, err
	}
	switch cmd[1] {
	case cardproto.InsStore, cardproto.InsDelete, cardproto.InsPutCertificate:
	default:
		return resp, err
	}
	if sw1 := resp[len(resp)-2]; sw1 != 0x90 && sw1 != 0x91 {
		return resp, err
	}
	c := bytes.Clone(cmd)
	p.mu.Lock()
	p.kept = append(p.kept, c)
	f := p.accepted
	p.mu.Unlock()
	if f != nil {
		f(c)
	}
	return resp, err
}

// taken returns the authorised commands the card accepted so far.
func (p *tap) taken() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.kept...)
}

// newGate returns a gate for the venue, with its own journal, whose clock
// stands at gateNow.
func newGate(t *testing.T, env *systemtest.Env, id byte) (*gate.Gate, *journal.Journal) {
	t.Helper()
	j, err := journal.Open(filepath.Join(t.TempDir(), fmt.Sprintf("gate-%02x.journal", id)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	g, err := gate.New(gate.Config{Keys: env.Keys.KeySet(), Venue: venue, Location: time.UTC,
		ID: [4]byte{0x47, 0xA7, 0xE5, id}, Now: func() time.Time { return gateNow }, Journal: j})
	require.NoError(t, err)
	return g, j
}

// admit checks the card at g and requires that it admits a ticket.
func admit(t *testing.T, g *gate.Gate, port hostlib.Transport) gate.Verdict {
	t.Helper()
	v, err := g.Check(t.Context(), port)
	require.NoError(t, err)
	require.True(t, v.Accepted, "%v", v.Reason)
	return v
}

// sentCheck reports whether the gate sent CHECK during a verdict.
func sentCheck(v gate.Verdict) bool {
	for _, x := range v.Exchanges {
		if x.Op == "CHECK" {
			return true
		}
	}
	return false
}

// device is a contactless device that is not (only) the card: it answers
// SELECT and FIND with bytes it skimmed or made up, when set, and relays
// the rest to a genuine card, when it has one. It answers CHECK itself,
// never committing anything: with check's answer, or with a made-up
// receipt.
type device struct {
	card  hostlib.Transport
	fci   []byte
	found []byte
	check func(cmd []byte) []byte
	// checks counts the CHECKs the gate sent.
	checks int
}

// Transmit implements hostlib.Transport.
func (d *device) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	ok := []byte{0x90, 0x00}
	switch cmd[1] {
	case cardproto.InsSelect:
		if d.fci != nil {
			return append(bytes.Clone(d.fci), ok...), nil
		}
	case cardproto.InsFind:
		if d.found != nil {
			return append(bytes.Clone(d.found), ok...), nil
		}
	case cardproto.InsCheck:
		d.checks++
		if d.check != nil {
			return d.check(cmd), nil
		}
		receipt := make([]byte, ticketfmt.SignatureSize)
		_, _ = rand.Read(receipt)
		return append(append([]byte{0x9D, 0x40}, receipt...), ok...), nil
	}
	if d.card == nil {
		return []byte{0x6D, 0x00}, nil
	}
	return d.card.Transmit(ctx, cmd)
}

// skim reads what any device in range of a card can: its FCI (with the
// card certificate) and the ticket FIND answers for the venue today.
func skim(t *testing.T, card *emulator.Card) (fci, found []byte) {
	t.Helper()
	c := hostlib.NewClient(card.Port(applet.Contactless), hostlib.ClientOptions{})
	r, err := c.Do(t.Context(), "SELECT", cardproto.Select())
	require.NoError(t, err)
	fci = r.Data
	r, err = c.Do(t.Context(), "FIND", cardproto.Find(cardproto.Query{Seller: venue, Date: ticketfmt.DateOf(useTime)}))
	require.NoError(t, err)
	return fci, r.Data
}

// findAnswer is the E3 a card answers FIND with, for any ticket bytes.
func findAnswer(t *testing.T, ticketE1 []byte) []byte {
	b := tlv.NewBuilder(nil)
	b.AddConstructed(cardproto.TagTicketState, func(b *tlv.Builder) {
		b.AddBytes(cardproto.TagState, []byte{cardproto.StateUnchecked})
		b.AddRaw(ticketE1)
	})
	out, err := b.Bytes()
	require.NoError(t, err)
	return out
}

// listEntry builds a LIST entry E2 as the card does, for a lie.
func listEntry(t *testing.T, e cardproto.Entry) []byte {
	b := tlv.NewBuilder(nil)
	b.AddConstructed(cardproto.TagListEntry, func(b *tlv.Builder) {
		b.AddBytes(ticketfmt.TagID, e.ID[:])
		b.AddBytes(ticketfmt.TagDate, e.Date.AppendBCD(nil))
		b.AddBytes(ticketfmt.TagTime, e.Time.AppendBCD(nil))
		b.AddUint16(cardproto.TagLength, uint16(e.Length))
		b.AddBytes(cardproto.TagState, []byte{e.State})
		if e.Check != nil {
			b.AddBytes(cardproto.TagGateID, e.Check.Gate[:])
			b.AddBytes(cardproto.TagCheckTime, e.Check.Time.AppendBCD(nil))
		}
	})
	out, err := b.Bytes()
	require.NoError(t, err)
	return out
}

// patch returns b with the first occurrence of old replaced by repl, of
// the same length.
func patch(t *testing.T, b, old, repl []byte) []byte {
	t.Helper()
	require.Len(t, repl, len(old))
	i := bytes.Index(b, old)
	require.GreaterOrEqual(t, i, 0, "%X not found in %X", old, b)
	out := bytes.Clone(b)
	copy(out[i:], repl)
	return out
}

// field returns a TLV field's bytes with a short tag and length.
func field(tag byte, value []byte) []byte {
	return append([]byte{tag, byte(len(value))}, value...)
}

// u32 and u16 are big-endian encodings.
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u16(v int) []byte    { return binary.BigEndian.AppendUint16(nil, uint16(v)) }

// unhex decodes hex the server sent.
func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// randomID is a ticket ID an attacker guesses.
func randomID(t *testing.T) ticketfmt.ID {
	var id ticketfmt.ID
	_, err := rand.Read(id[:])
	require.NoError(t, err)
	return id
}
