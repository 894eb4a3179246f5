// Package gate is the gate role of simtix (network.md, "Gates"): a terminal
// vendor drops Gate.Check into its gate loop, once per card presented on the
// contactless reader.
//
// A check is offline and takes three card commands: SELECT (the card
// certificate), FIND (the ticket) and CHECK with a fresh nonce (the card's
// receipt). Before CHECK the gate verifies the card certificate and the
// ticket's signature with the issuer's keys, the ticket's binding to the
// certified serial, the venue, the time window, and that the ticket is in
// neither its own journal nor the deny list. It admits only on a receipt
// that verifies with the certified card key, and journals the check before
// it answers. It never marks a ticket it refused.
package gate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/contactless"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/ticketfmt"
)

// Reasons a ticket is refused. A Verdict's Reason wraps one of them, so
// that errors.Is tells them apart.
var (
	// ErrNoCertificate: the card has no certificate (it never synced).
	ErrNoCertificate = errors.New("the card has no certificate")
	// ErrCertificate: the certificate is malformed or not signed by a
	// trusted issuer key.
	ErrCertificate = errors.New("the card certificate does not verify")
	// ErrNoTicket: the card has no unchecked ticket for this venue today.
	ErrNoTicket = errors.New("no ticket for this venue in the time window")
	// ErrSignature: the ticket is not signed by a trusted issuer key.
	ErrSignature = errors.New("the ticket signature does not verify")
	// ErrBinding: the ticket is bound to another card than the certified
	// one (a copied ticket).
	ErrBinding = errors.New("the ticket is bound to another card")
	// ErrVenue: the ticket is for another venue.
	ErrVenue = errors.New("the ticket is for another venue")
	// ErrTooEarly and ErrTooLate: the ticket's use time is outside the
	// gate's window.
	ErrTooEarly = errors.New("too early for this ticket")
	ErrTooLate  = errors.New("too late for this ticket")
	// ErrJournaled: this gate already admitted the ticket.
	ErrJournaled = errors.New("the ticket was already checked at this gate")
	// ErrDenied: the ticket is on the deny list (checked elsewhere).
	ErrDenied = errors.New("the ticket is on the deny list")
	// ErrCardRefused: the card refused CHECK (checked meanwhile).
	ErrCardRefused = errors.New("the card refused the check")
	// ErrReceipt: the card's receipt does not verify (not the genuine
	// card, or a card that did not commit the check).
	ErrReceipt = errors.New("the card's receipt does not verify")
)

// Journal is where a gate keeps its checks; *journal.Journal is one.
type Journal interface {
	// Has reports whether the ticket is in the journal.
	Has(id ticketfmt.ID) bool
	// Append adds a check; it returns only once the check is durable.
	Append(r journal.Record) error
}

// Config configures a Gate.
type Config struct {
	// Keys are the issuer's public keys (issuer-keys.pem).
	Keys *ticketfmt.KeySet
	// Venue is the seller whose tickets this gate admits.
	Venue string
	// Type, when set, admits only tickets of this type.
	Type *uint8
	// Before and After bound the window: a ticket is accepted from Before
	// ahead of its use time until After past it (defaults 2h and 1h).
	Before, After time.Duration
	// Location is the venue's time zone (time.Local when nil): tickets'
	// use times and check times are local times there.
	Location *time.Location
	// ID is the gate ID written into each check.
	ID [cardkeys.GateIDSize]byte
	// Now is the gate's clock (time.Now when nil).
	Now func() time.Time
	// Journal keeps the gate's checks (required).
	Journal Journal
	// Rand is the nonce source (crypto/rand when nil).
	Rand io.Reader
	// Retries is how many times CHECK is sent again when its answer is lost
	// (default 2).
	Retries int
	// PendingTTL is how long the gate remembers a check whose answer never
	// came, to finish it when the same card comes back (default 2 min).
	PendingTTL time.Duration
}

// Verdict is the outcome of one check.
type Verdict struct {
	// Accepted is true only when the card's receipt verified and the check
	// is journaled.
	Accepted bool
	// Reason says why a ticket was refused (nil when accepted); it wraps
	// one of the Err* reasons, or a card or transport error.
	Reason error
	// Serial is the certified card's serial (zero before the certificate
	// verified).
	Serial ticketfmt.Serial
	// Ticket is the ticket found on the card, when one was.
	Ticket *ticketfmt.Ticket
	// Record is the journaled check, when accepted.
	Record *journal.Record
	// APDUs is the number of command APDUs sent to the card.
	APDUs int
	// Exchanges are the APDUs and answers of the check, in order.
	Exchanges []Exchange
}

// Exchange is one command APDU and its answer as they went over the air.
type Exchange struct {
	Op       string
	Command  []byte
	Response []byte
}

// Gate checks tickets. It is safe for concurrent use, though a gate
// usually serves one reader.
type Gate struct {
	cfg Config

	mu      sync.Mutex
	deny    map[ticketfmt.ID]bool
	pending map[ticketfmt.Serial]pendingCheck
}

// pendingCheck is a CHECK sent to a card whose answer never came: the card
// may have committed it.
type pendingCheck struct {
	id      ticketfmt.ID
	raw     []byte
	ticket  *ticketfmt.Ticket
	rec     cardproto.CheckRecord
	nonce   [cardkeys.NonceSize]byte
	expires time.Time
}

// New returns a gate with cfg.
func New(cfg Config) (*Gate, error) {
	if cfg.Keys == nil || cfg.Keys.Len() == 0 {
		return nil, errors.New("gate: no issuer keys")
	}
	if cfg.Venue == "" {
		return nil, errors.New("gate: no venue")
	}
	if cfg.Journal == nil {
		return nil, errors.New("gate: no journal")
	}
	if cfg.Before < 0 || cfg.After < 0 {
		return nil, errors.New("gate: the window's bounds must not be negative")
	}
	if cfg.Before == 0 && cfg.After == 0 {
		cfg.Before, cfg.After = 2*time.Hour, time.Hour
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if cfg.PendingTTL == 0 {
		cfg.PendingTTL = 2 * time.Minute
	}
	return &Gate{cfg: cfg, deny: map[ticketfmt.ID]bool{}, pending: map[ticketfmt.Serial]pendingCheck{}}, nil
}

// SetDenyList replaces the deny list (the server's list of checked
// tickets).
func (g *Gate) SetDenyList(ids []ticketfmt.ID) {
	deny := make(map[ticketfmt.ID]bool, len(ids))
	for _, id := range ids {
		deny[id] = true
	}
	g.mu.Lock()
	g.deny = deny
	g.mu.Unlock()
}

// denied reports whether id is on the deny list.
func (g *Gate) denied(id ticketfmt.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.deny[id]
}

// Check checks one ticket on the card behind t (its contactless
// interface, powered and freshly presented). The error is for a gate that
// could not finish (the card left, the journal failed); a refused ticket
// is a Verdict with a Reason and a nil error.
func (g *Gate) Check(ctx context.Context, t hostlib.Transport) (v Verdict, err error) {
	rec := &recorder{t: t}
	card := hostlib.NewApplet(rec, hostlib.ClientOptions{})
	defer func() { v.APDUs, v.Exchanges = len(rec.ex), rec.ex }()

	fci, err := card.Select(ctx)
	if err != nil {
		return v, fmt.Errorf("gate: SELECT: %w", err)
	}
	if fci.Certificate == nil {
		v.Reason = ErrNoCertificate
		return v, nil
	}
	cert, err := ticketfmt.UnmarshalCertificate(fci.Certificate)
	if err == nil {
		err = cert.Verify(g.cfg.Keys)
	}
	if err != nil {
		v.Reason = fmt.Errorf("%w: %w", ErrCertificate, err)
		return v, nil
	}
	v.Serial = cert.Serial

	if p, ok := g.takePending(cert.Serial); ok {
		v.Ticket = p.ticket
		return g.check(ctx, card, cert, p, v)
	}

	now := g.cfg.Now().In(g.cfg.Location)
	ts, err := g.find(ctx, card, now)
	if errors.Is(err, apdu.ErrNotFound) {
		v.Reason = ErrNoTicket
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("gate: FIND: %w", err)
	}
	v.Ticket = ts.Ticket
	if reason := g.admissible(ts.Ticket, cert, now); reason != nil {
		v.Reason = reason
		return v, nil
	}
	p := pendingCheck{id: ts.Ticket.ID, raw: ts.Raw, ticket: ts.Ticket,
		rec: cardproto.CheckRecord{Gate: g.cfg.ID, Time: ticketfmt.DateTimeOf(now)}}
	if _, err := io.ReadFull(g.cfg.Rand, p.nonce[:]); err != nil {
		return v, fmt.Errorf("gate: nonce: %w", err)
	}
	return g.check(ctx, card, cert, p, v)
}

// find asks the card for the first unchecked ticket of the venue whose use
// time is not past the window: on the gate's date first (three APDUs in
// all), then on the other dates the window touches, when it spans
// midnight. A ticket found beyond the window is returned only if none is
// found within it (and is then refused as too early).
func (g *Gate) find(ctx context.Context, card *hostlib.Applet, now time.Time) (cardproto.TicketState, error) {
	from, to := now.Add(-g.cfg.After), now.Add(g.cfg.Before)
	days := []time.Time{dayOf(now)}
	for d := dayOf(from); !d.After(to); d = d.AddDate(0, 0, 1) {
		if !d.Equal(days[0]) {
			days = append(days, d)
		}
	}
	var early *cardproto.TicketState
	for _, day := range days {
		q := cardproto.Query{Type: g.cfg.Type, Seller: g.cfg.Venue, Date: ticketfmt.DateOf(day)}
		if day.Equal(dayOf(from)) {
			nb := ticketfmt.TimeOfDayOf(from)
			q.NotBefore = &nb
		}
		ts, err := card.Find(ctx, q)
		if errors.Is(err, apdu.ErrNotFound) {
			continue
		}
		if err != nil {
			return ts, err
		}
		if !ts.Ticket.Date.In(ts.Ticket.Time, g.cfg.Location).After(to) {
			return ts, nil
		}
		if early == nil {
			early = &ts
		}
	}
	if early != nil {
		return *early, nil
	}
	// Nothing in the window: a ticket of today that is past it is worth
	// telling the holder about (one more APDU, on a refusal only).
	q := cardproto.Query{Type: g.cfg.Type, Seller: g.cfg.Venue, Date: ticketfmt.DateOf(now)}
	return card.Find(ctx, q)
}

// dayOf returns the midnight starting t's day, in t's location.
func dayOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// admissible runs every offline check of a ticket found on the card.
func (g *Gate) admissible(t *ticketfmt.Ticket, cert *ticketfmt.Certificate, now time.Time) error {
	if err := t.Verify(g.cfg.Keys); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if t.Carrier != cert.Serial {
		return fmt.Errorf("%w: ticket for %v, card %v", ErrBinding, t.Carrier, cert.Serial)
	}
	if t.Seller != g.cfg.Venue {
		return fmt.Errorf("%w: %q", ErrVenue, t.Seller)
	}
	if g.cfg.Type != nil && t.Type != *g.cfg.Type {
		return fmt.Errorf("%w: type %d", ErrVenue, t.Type)
	}
	use := t.Date.In(t.Time, g.cfg.Location)
	if now.Before(use.Add(-g.cfg.Before)) {
		return fmt.Errorf("%w: it is for %s %s", ErrTooEarly, t.Date, t.Time)
	}
	if now.After(use.Add(g.cfg.After)) {
		return fmt.Errorf("%w: it was for %s %s", ErrTooLate, t.Date, t.Time)
	}
	if g.cfg.Journal.Has(t.ID) {
		return fmt.Errorf("%w: %v", ErrJournaled, t.ID)
	}
	if g.denied(t.ID) {
		return fmt.Errorf("%w: %v", ErrDenied, t.ID)
	}
	return nil
}

// check sends CHECK (again, while its answer is lost), verifies the
// receipt and journals the check.
func (g *Gate) check(ctx context.Context, card *hostlib.Applet, cert *ticketfmt.Certificate, p pendingCheck, v Verdict) (Verdict, error) {
	var receipt []byte
	var err error
	reached := false // an attempt may have reached the card
	for attempt := 0; ; attempt++ {
		receipt, err = card.Check(ctx, p.id, p.rec, p.nonce)
		if lost(err) || errors.Is(err, hostlib.ErrCardReset) {
			reached = true
		}
		if errors.Is(err, hostlib.ErrCardReset) && attempt < g.cfg.Retries {
			// Another program reset the card: select the applet again.
			if _, serr := card.Select(ctx); serr != nil {
				err = serr
				break
			}
			continue
		}
		if err == nil || !lost(err) || attempt == g.cfg.Retries {
			break
		}
	}
	var refused *apdu.Error
	definite := errors.As(err, &refused) && (refused.SW == apdu.SWConditionsNotSatisfied || errors.Is(err, apdu.ErrNotFound))
	if err != nil && reached && !definite {
		// The card may have committed the check: finish it when the
		// card comes back.
		p.expires = g.cfg.Now().Add(g.cfg.PendingTTL)
		g.mu.Lock()
		g.pending[cert.Serial] = p
		g.mu.Unlock()
		return v, fmt.Errorf("gate: CHECK: %w (the check completes when the card is presented again)", err)
	}
	var ae *apdu.Error
	if errors.As(err, &ae) {
		v.Reason = fmt.Errorf("%w: %w", ErrCardRefused, err)
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("gate: CHECK: %w", err)
	}
	if err := cardproto.VerifyReceipt(cert.PublicKey, cert.Serial, p.raw, p.rec, p.nonce[:], receipt); err != nil {
		v.Reason = fmt.Errorf("%w: %w", ErrReceipt, err)
		return v, nil
	}
	r := journal.Record{TicketID: p.id, Serial: cert.Serial, Gate: p.rec.Gate, Time: p.rec.Time, Nonce: p.nonce, Receipt: receipt}
	if err := g.cfg.Journal.Append(r); err != nil {
		return v, fmt.Errorf("gate: journal: %w", err)
	}
	v.Accepted, v.Record = true, &r
	return v, nil
}

// takePending returns and forgets the unfinished check of a card, if one
// is still fresh.
func (g *Gate) takePending(serial ticketfmt.Serial) (pendingCheck, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.pending[serial]
	delete(g.pending, serial)
	if ok && g.cfg.Now().After(p.expires) {
		return pendingCheck{}, false
	}
	return p, ok
}

// lost reports whether err means the command's answer never came.
func lost(err error) bool {
	return errors.Is(err, hostlib.ErrResponseLost) || errors.Is(err, hostlib.ErrCardRemoved) ||
		errors.Is(err, context.DeadlineExceeded)
}

// recorder is a transport that keeps every exchange.
type recorder struct {
	t  hostlib.Transport
	ex []Exchange
}

// Transmit implements hostlib.Transport.
func (r *recorder) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := r.t.Transmit(ctx, cmd)
	r.ex = append(r.ex, Exchange{Op: opName(cmd), Command: append([]byte(nil), cmd...), Response: append([]byte(nil), resp...)})
	return resp, err
}

// opName names a command APDU by its instruction byte.
func opName(cmd []byte) string {
	if len(cmd) < 2 {
		return "?"
	}
	switch cmd[1] {
	case 0xA4:
		return "SELECT"
	case cardproto.InsFind:
		return "FIND"
	case cardproto.InsCheck:
		return "CHECK"
	case 0xC0:
		return "GET RESPONSE"
	}
	return fmt.Sprintf("INS %02X", cmd[1])
}

// Timing estimates how long the check took on the air and in the card by
// the contactless model m (ISO/IEC 14443-4 framing, the card's modelled
// processing, signature and NVM writes; docs/contactless.md), from the
// exchanges' real bytes. Exchanges that got no answer are left out; add
// m.Activation() for the time from the card's arrival in the field.
func (v Verdict) Timing(m contactless.Model) contactless.Breakdown {
	var steps []contactless.Step
	for _, x := range v.Exchanges {
		if len(x.Response) < 2 {
			continue
		}
		steps = append(steps, contactless.Step{Command: x.Command, Response: x.Response, Cost: contactless.AppletCosts(x.Command, x.Response)})
	}
	return m.Estimate(steps)
}
