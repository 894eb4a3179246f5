// Package cardtest is the card's behaviour test suite: the same assertions
// against any way of reaching the card (the applet in-process, the emulator
// through its transport, the emulated card through real pcscd), for the
// project's tests only.
package cardtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/ticketfmt"
)

// Target is a card under test, reached on both interfaces.
type Target interface {
	// Transmit sends one command APDU on an interface and returns the
	// response APDU, exactly as the card gave it.
	Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error)
	// Reset power-cycles one interface: its volatile state is cleared.
	Reset(ctx context.Context, i applet.Interface) error
}

// Fixture is what a card under test is personalised with, and the issuer
// that makes its tickets.
type Fixture struct {
	Serial     ticketfmt.Serial
	Master     []byte
	Keys       cardkeys.Keys
	CardKey    *ecdsa.PrivateKey
	Issuer     *ecdsa.PrivateKey
	Capacity   int
	MaxTickets int
	// T0 asks for a card in T=0 mode.
	T0 bool
}

// Personalisation returns the applet's personalisation for f.
func (f Fixture) Personalisation() applet.Personalisation {
	return applet.Personalisation{Serial: f.Serial, Capacity: f.Capacity, MaxTickets: f.MaxTickets, Master: f.Master, CardKey: f.CardKey}
}

// VectorFixture is the card of vectors.json: its master secret, serial and
// card key, capacity 2048, 32 tickets.
func VectorFixture(t testing.TB) Fixture {
	t.Helper()
	v, err := testvectors.Load()
	require.NoError(t, err)
	var f Fixture
	copy(f.Serial[:], v.Serial)
	f.Master = v.MasterSecret
	f.Keys, err = cardkeys.Derive(f.Master, f.Serial)
	require.NoError(t, err)
	f.CardKey, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), v.CardPrivateScalar)
	require.NoError(t, err)
	f.Issuer, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), v.IssuerPrivateScalar)
	require.NoError(t, err)
	f.Capacity, f.MaxTickets = applet.DefaultCapacity, applet.DefaultMaxTickets
	return f
}

// Factory makes a new card personalised with f.
type Factory func(t testing.TB, f Fixture) Target

// Harness drives one card under test.
type Harness struct {
	t   testing.TB
	tgt Target
	F   Fixture
	V   *testvectors.Vectors
	ids int
}

// NewHarness makes a card with newTarget and returns its harness.
func NewHarness(t testing.TB, newTarget Factory, f Fixture) *Harness {
	t.Helper()
	v, err := testvectors.Load()
	require.NoError(t, err)
	return &Harness{t: t, tgt: newTarget(t, f), F: f, V: v}
}

// Raw sends raw bytes and returns the response.
func (h *Harness) Raw(i applet.Interface, cmd []byte) apdu.Response {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := h.tgt.Transmit(ctx, i, cmd)
	require.NoError(h.t, err, "transmit %X", cmd)
	r, err := apdu.ParseResponse(out)
	require.NoError(h.t, err)
	return r
}

// RawHex sends an APDU given in hex.
func (h *Harness) RawHex(i applet.Interface, s string) apdu.Response {
	h.t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(h.t, err)
	return h.Raw(i, b)
}

// Send encodes and sends one command.
func (h *Harness) Send(i applet.Interface, cmd apdu.Command) apdu.Response {
	h.t.Helper()
	b, err := cmd.Bytes()
	require.NoError(h.t, err)
	return h.Raw(i, b)
}

// OK sends a command and requires 9000 (or 91xx on the contact side).
func (h *Harness) OK(i applet.Interface, cmd apdu.Command) []byte {
	h.t.Helper()
	r := h.Send(i, cmd)
	require.True(h.t, r.SW.OK(), "%v answered %v", cmd, r.SW)
	return r.Data
}

// All sends a command and collects its whole response through GET
// RESPONSE, requiring success.
func (h *Harness) All(i applet.Interface, cmd apdu.Command) []byte {
	h.t.Helper()
	r := h.Send(i, cmd)
	out := append([]byte(nil), r.Data...)
	for {
		if _, more := r.SW.MoreData(); !more {
			break
		}
		r = h.Send(i, cardproto.OnChannel(cardproto.GetResponse(256), int(cmd.CLA&0x03)))
		out = append(out, r.Data...)
	}
	require.True(h.t, r.SW.OK(), "%v answered %v", cmd, r.SW)
	return out
}

// SW sends a command and requires the status word.
func (h *Harness) SW(i applet.Interface, cmd apdu.Command, want apdu.StatusWord) apdu.Response {
	h.t.Helper()
	r := h.Send(i, cmd)
	require.Equal(h.t, want, r.SW, "%v answered %v, want %v", cmd, r.SW, want)
	return r
}

// Reset power-cycles an interface.
func (h *Harness) Reset(i applet.Interface) {
	h.t.Helper()
	require.NoError(h.t, h.tgt.Reset(context.Background(), i))
}

// Select selects the applet on the basic channel of an interface.
func (h *Harness) Select(i applet.Interface) cardproto.FCI {
	h.t.Helper()
	fci, err := cardproto.ParseFCI(h.OK(i, cardproto.Select()))
	require.NoError(h.t, err)
	return fci
}

// Status reads the status template on the contact interface.
func (h *Harness) Status() cardproto.StatusTemplate {
	h.t.Helper()
	st, err := cardproto.ParseStatus(h.OK(applet.Contact, cardproto.Status()))
	require.NoError(h.t, err)
	return st
}

// Sync runs BEGIN SYNC (the applet selected on the contact interface) and
// returns the answer, verified.
func (h *Harness) Sync() cardproto.SyncAnswer {
	h.t.Helper()
	var ch [16]byte
	copy(ch[:], h.V.SyncChallenge)
	a, err := cardproto.ParseSync(h.OK(applet.Contact, cardproto.BeginSync(ch)))
	require.NoError(h.t, err)
	require.NoError(h.t, a.Verify(h.F.Keys, ch[:]))
	return a
}

// Auth returns the authorisation for the card's current epoch and counter.
func (h *Harness) Auth() cardkeys.Authorisation {
	h.t.Helper()
	st := h.Status()
	return cardkeys.Authorisation{Epoch: st.Epoch, Counter: st.Counter}
}

// StoreCmd is the STORE of ticket under a.
func (h *Harness) StoreCmd(ticket []byte, a cardkeys.Authorisation) apdu.Command {
	return cardproto.Store(ticket, a, cardkeys.StoreMAC(h.F.Keys, h.F.Serial, a, ticket))
}

// DeleteCmd is the DELETE of id in state expected under a.
func (h *Harness) DeleteCmd(id ticketfmt.ID, expected byte, a cardkeys.Authorisation) apdu.Command {
	return cardproto.Delete(id, expected, a, cardkeys.DeleteMAC(h.F.Keys, h.F.Serial, a, id, expected))
}

// Store stores a ticket at the card's current epoch and counter.
func (h *Harness) Store(ticket []byte) apdu.Response {
	h.t.Helper()
	cmd := h.StoreCmd(ticket, h.Auth())
	b, err := cmd.Bytes()
	require.NoError(h.t, err)
	return h.Raw(applet.Contact, b)
}

// Issue signs a ticket of the corpus (index n mod its size) bound to the
// card, with a fresh ID, and returns its encoding.
func (h *Harness) Issue(n int) []byte {
	h.t.Helper()
	ts, err := corpus.Tickets()
	require.NoError(h.t, err)
	t := ts[n%len(ts)]
	return h.IssueTicket(&t)
}

// IssueTicket signs t, bound to the card, with a fresh ID.
func (h *Harness) IssueTicket(t *ticketfmt.Ticket) []byte {
	h.t.Helper()
	h.ids++
	t.ID = IssuedID(h.ids)
	t.Carrier = h.F.Serial
	require.NoError(h.t, t.Sign(Deterministic{h.F.Issuer}))
	b, err := t.Marshal()
	require.NoError(h.t, err)
	return b
}

// IssuedID is the ID of the k-th ticket a harness issues (from 1).
func IssuedID(k int) ticketfmt.ID {
	var id ticketfmt.ID
	copy(id[:], fmt.Sprintf("TST%07d", k))
	return id
}

// T returns the test the harness reports to.
func (h *Harness) T() testing.TB { return h.t }

// Deterministic signs with RFC 6979 nonces, so that a test run can be
// replayed byte for byte.
type Deterministic struct{ *ecdsa.PrivateKey }

// Sign implements crypto.Signer, ignoring the random source.
func (d Deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.PrivateKey.Sign(nil, digest, opts)
}

// ID returns the ID of an encoded ticket.
func ID(t testing.TB, ticket []byte) ticketfmt.ID {
	tk, err := ticketfmt.Unmarshal(ticket)
	require.NoError(t, err)
	return tk.ID
}
