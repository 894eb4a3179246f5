// Package box is the virtual ticket box's logic, without I/O: where each
// ticket is, how a card's authenticated answer settles the previous sync,
// and which plan (certificate, deletions, stores) the next sync gets.
//
// The server keeps tickets and cards in a database and calls this package
// inside one transaction per sync; everything here is a pure function of
// its inputs (network.md, "Sync" and "Where a ticket is").
package box

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/ticketfmt"
)

// State is where a ticket is (network.md, "Where a ticket is").
type State string

// The ticket states.
const (
	// InBox: in the virtual ticket box, not on the card.
	InBox State = "box"
	// Delivering: authorised for STORE in sync epoch Epoch at counter
	// Counter; may or may not be on the card yet.
	Delivering State = "delivering"
	// OnCard: on the card, unchecked.
	OnCard State = "card"
	// Returning: authorised for DELETE (expected state unchecked) in epoch
	// Epoch at counter Counter; may still be on the card.
	Returning State = "returning"
	// Checked: checked at a gate; final.
	Checked State = "checked"
)

// Valid reports whether s is one of the five states.
func (s State) Valid() bool {
	switch s {
	case InBox, Delivering, OnCard, Returning, Checked:
		return true
	}
	return false
}

// Check is where and when a ticket was checked.
type Check struct {
	Gate [4]byte
	Time ticketfmt.DateTime
	// Source is who told the box: "card" (an inventory) or "gate" (a
	// journal).
	Source string
}

// Ticket is one issued ticket as the box keeps it.
type Ticket struct {
	ID      ticketfmt.ID
	Carrier ticketfmt.Serial
	// Raw is the signed ticket E1.
	Raw  []byte
	Date ticketfmt.Date
	Time ticketfmt.TimeOfDay
	// Seq orders tickets issued at the same use time: issue order.
	Seq   int64
	State State
	// Epoch and Counter are the authorisation of a Delivering or Returning
	// ticket.
	Epoch, Counter uint32
	// Check is set for a Checked ticket.
	Check *Check
	// OffCard is set once a checked ticket is known to have left its card
	// (its DELETE was used), so that it is not planned again.
	OffCard bool
	// Due is set on a ticket in the box that an order answered "card"
	// (Route): the card's next sync stores it before the box's other
	// tickets, so that the answer holds whatever is ordered after it. It
	// is cleared when the ticket reaches the card.
	Due bool
}

// Size is the room the ticket takes on a card whose per-record overhead is
// h.
func (t *Ticket) Size(h int) int { return len(t.Raw) + h }

// Op is a plan item's command.
type Op string

// The plan operations, in the order a plan holds them.
const (
	OpCertificate Op = "PUT CERTIFICATE"
	OpDelete      Op = "DELETE"
	OpStore       Op = "STORE"
)

// Item is one authorised change in a plan, at counter value Plan.C0 + its
// index.
type Item struct {
	Op Op
	// Ticket is the ticket a DELETE or STORE is about.
	Ticket ticketfmt.ID
	// Expected is a DELETE's expected state (cardproto.StateUnchecked or
	// StateChecked).
	Expected byte
}

// Plan is what one sync authorised: items for consecutive counter values
// from C0 in epoch Epoch.
type Plan struct {
	Epoch uint32
	C0    uint32
	Items []Item
}

// Card is what the box knows of a card.
type Card struct {
	Serial ticketfmt.Serial
	// PublicKey is the card key (uncompressed P-256), from its first sync.
	PublicKey []byte
	// Certified is set once a PUT CERTIFICATE settled as used.
	Certified bool
	// Epoch is the last epoch the box accepted for this card.
	Epoch uint32
	// Status is the status the card last reported.
	Status cardproto.StatusTemplate
	// Plan is the last plan given, not yet settled.
	Plan Plan
	// Flags are reasons an operator should look at this card.
	Flags []string
}

// Observation is what one authenticated BEGIN SYNC and LIST told the box.
type Observation struct {
	Status    cardproto.StatusTemplate
	Inventory []cardproto.Entry
}

// Exchange asks to put ticket Take from the box on the card in place of
// unchecked ticket Give.
type Exchange struct {
	Give, Take ticketfmt.ID
}

// ErrExchange means an exchange the box cannot plan: the sync is refused
// and nothing changes.
var ErrExchange = errors.New("box: exchange refused")

// Change is one ticket's move, for the store to apply conditionally on the
// state it leaves.
type Change struct {
	Ticket *Ticket // the ticket after the change
	From   State
}

// Result is a sync's outcome: the card after it, the tickets that changed,
// the new plan and what disagreed with the box's expectations.
type Result struct {
	Card    Card
	Changes []Change
	Plan    Plan
	// Log lists disagreements between the card and the box, for the log.
	Log []string
}

// Sync settles the card's previous plan with an authenticated observation,
// makes the inventory authoritative, and (unless final) plans the next
// changes. tickets are all of this card's tickets the box holds; Sync does
// not modify them (it returns changed copies). The caller has checked the
// MAC, the challenge, the epoch and the inventory digest.
func Sync(card Card, tickets []*Ticket, obs Observation, final bool, ex *Exchange) (Result, error) {
	s := &syncer{card: card, obs: obs, byID: map[ticketfmt.ID]*Ticket{}, from: map[ticketfmt.ID]State{}}
	for _, t := range tickets {
		c := *t
		s.byID[t.ID] = &c
		s.from[t.ID] = t.State
		s.order = append(s.order, &c)
	}
	s.settle()
	s.inventory()
	s.card.Status = obs.Status
	s.card.Epoch = obs.Status.Epoch
	plan := Plan{Epoch: obs.Status.Epoch, C0: obs.Status.Counter}
	if !final {
		if ex != nil {
			if err := s.checkExchange(*ex); err != nil {
				return Result{}, err
			}
		}
		var err error
		if plan.Items, err = s.plan(ex); err != nil {
			return Result{}, err
		}
	}
	s.card.Plan = plan
	res := Result{Card: s.card, Plan: plan, Log: s.log}
	for _, t := range s.order {
		if s.changed(t) {
			res.Changes = append(res.Changes, Change{Ticket: t, From: s.from[t.ID]})
		}
	}
	return res, nil
}

type syncer struct {
	card  Card
	obs   Observation
	byID  map[ticketfmt.ID]*Ticket
	from  map[ticketfmt.ID]State
	order []*Ticket
	log   []string
	dirty map[ticketfmt.ID]bool
}

func (s *syncer) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf(format, args...))
}

func (s *syncer) touch(t *Ticket) {
	if s.dirty == nil {
		s.dirty = map[ticketfmt.ID]bool{}
	}
	s.dirty[t.ID] = true
}

func (s *syncer) changed(t *Ticket) bool { return s.dirty[t.ID] }

func (s *syncer) move(t *Ticket, to State) {
	if t.State == to {
		return
	}
	t.State = to
	if to != Delivering && to != Returning {
		t.Epoch, t.Counter = 0, 0
	}
	if to == OnCard || to == Checked {
		t.Due = false
	}
	s.touch(t)
}

// settle applies the previous plan: the card's counter says how many of
// its authorisations were used, always the first ones.
func (s *syncer) settle() {
	p := s.card.Plan
	c := s.obs.Status.Counter
	n := uint32(len(p.Items))
	used := n
	switch {
	case c < p.C0 || c-p.C0 > n:
		s.card.Flags = append(s.card.Flags, fmt.Sprintf("counter %d outside the last plan's %d..%d", c, p.C0, p.C0+n))
		s.logf("card %v: counter %d outside %d..%d; the inventory decides", s.card.Serial, c, p.C0, p.C0+n)
		if c < p.C0 {
			used = 0
		}
	default:
		used = c - p.C0
	}
	for i, it := range p.Items {
		applied := uint32(i) < used
		switch it.Op {
		case OpCertificate:
			if applied {
				s.card.Certified = true
			}
		case OpStore:
			if t := s.byID[it.Ticket]; t != nil && t.State == Delivering {
				s.move(t, map[bool]State{true: OnCard, false: InBox}[applied])
			}
		case OpDelete:
			t := s.byID[it.Ticket]
			switch {
			case t == nil:
			case t.State == Returning:
				s.move(t, map[bool]State{true: InBox, false: OnCard}[applied])
			case t.State == Checked && applied:
				t.OffCard = true
				s.touch(t)
			}
		}
	}
}

// inventory makes the card's list authoritative.
func (s *syncer) inventory() {
	listed := map[ticketfmt.ID]bool{}
	for _, e := range s.obs.Inventory {
		listed[e.ID] = true
		t := s.byID[e.ID]
		if t == nil {
			s.logf("card %v lists ticket %v, which the box does not hold for it", s.card.Serial, e.ID)
			continue
		}
		if t.OffCard {
			t.OffCard = false
			s.touch(t)
		}
		switch {
		case e.State == cardproto.StateChecked && t.State == Checked && t.Check != nil && e.Check != nil &&
			(t.Check.Gate != e.Check.Gate || t.Check.Time != e.Check.Time):
			// A genuine card keeps the one check it made: another one
			// known to the box is a copy of the card (network.md, Gates).
			why := fmt.Sprintf("ticket %v checked twice (gate %X at %v by the %s, gate %X at %v on the card): a cloned card?",
				t.ID, t.Check.Gate, t.Check.Time, t.Check.Source, e.Check.Gate, e.Check.Time)
			if !slices.Contains(s.card.Flags, why) {
				s.card.Flags = append(s.card.Flags, why)
				s.logf("card %v: %s", s.card.Serial, why)
			}
		case e.State == cardproto.StateChecked && t.State != Checked:
			if t.State != OnCard {
				s.logf("ticket %v: the box had it %s, the card shows it checked", t.ID, t.State)
			}
			s.move(t, Checked)
			t.Check = &Check{Gate: e.Check.Gate, Time: e.Check.Time, Source: "card"}
		case e.State == cardproto.StateUnchecked && t.State == Checked:
			s.logf("ticket %v: checked (%s) but unchecked in card %v's inventory: a check after the card listed it, "+
				"or a copy of the card (then the gates' journals flag it); planned for deletion", t.ID, t.Check.Source, s.card.Serial)
		case e.State == cardproto.StateUnchecked && t.State != OnCard:
			s.logf("ticket %v: the box had it %s, the card holds it", t.ID, t.State)
			s.move(t, OnCard)
		}
	}
	for _, t := range s.order {
		if listed[t.ID] {
			continue
		}
		switch t.State {
		case OnCard, Delivering, Returning:
			s.logf("ticket %v: the box had it %s, the card does not hold it", t.ID, t.State)
			s.move(t, InBox)
		case Checked:
			if !t.OffCard {
				t.OffCard = true
				s.touch(t)
			}
		}
	}
}

func (s *syncer) checkExchange(ex Exchange) error {
	give, take := s.byID[ex.Give], s.byID[ex.Take]
	listedUnchecked := false
	for _, e := range s.obs.Inventory {
		if e.ID == ex.Give && e.State == cardproto.StateUnchecked {
			listedUnchecked = true
		}
	}
	switch {
	case give == nil || !listedUnchecked || give.State == Checked:
		return fmt.Errorf("%w: ticket %v is not an unchecked ticket on this card", ErrExchange, ex.Give)
	case take == nil || take.State != InBox:
		return fmt.Errorf("%w: ticket %v is not in the box for this card", ErrExchange, ex.Take)
	}
	return nil
}

// plan makes the next plan, for consecutive counter values from the card's
// counter.
func (s *syncer) plan(ex *Exchange) ([]Item, error) {
	st := s.obs.Status
	h := st.Overhead
	bytes, count := st.Free, st.MaxTickets-st.Stored
	var items []Item
	if !s.card.Certified {
		items = append(items, Item{Op: OpCertificate})
	}
	for _, e := range s.obs.Inventory {
		t := s.byID[e.ID]
		switch {
		case e.State == cardproto.StateChecked:
			items = append(items, Item{Op: OpDelete, Ticket: e.ID, Expected: cardproto.StateChecked})
			bytes, count = bytes+e.Length+h, count+1
		case t != nil && t.State == Checked:
			items = append(items, Item{Op: OpDelete, Ticket: e.ID, Expected: cardproto.StateUnchecked})
			bytes, count = bytes+e.Length+h, count+1
		}
	}
	var first *Ticket
	if ex != nil {
		give, take := s.byID[ex.Give], s.byID[ex.Take]
		items = append(items, Item{Op: OpDelete, Ticket: give.ID, Expected: cardproto.StateUnchecked})
		s.authorise(give, Returning, st.Epoch, st.Counter+uint32(len(items)-1))
		bytes, count = bytes+give.Size(h), count+1
		first = take
	}
	if first != nil && (first.Size(h) > bytes || count < 1) {
		return nil, fmt.Errorf("%w: ticket %v (%d bytes) does not fit in place of %v", ErrExchange, first.ID, len(first.Raw), ex.Give)
	}
	var stores []*Ticket
	if first != nil {
		stores = []*Ticket{first}
		bytes, count = bytes-first.Size(h), count-1
	}
	stores = append(stores, chooseStores(s.boxed(first), bytes, count, h)...)
	for _, t := range stores {
		items = append(items, Item{Op: OpStore, Ticket: t.ID})
		s.authorise(t, Delivering, st.Epoch, st.Counter+uint32(len(items)-1))
	}
	// An epoch's counter never wraps: drop what would need counters past
	// FFFFFFFF, and put their tickets back where they were (a checked
	// ticket stays checked).
	if room := uint64(0xFFFFFFFF) - uint64(st.Counter); uint64(len(items)) > room {
		for _, it := range items[room:] {
			t := s.byID[it.Ticket]
			switch {
			case t == nil || it.Op == OpCertificate:
			case it.Op == OpStore:
				s.move(t, InBox)
			case it.Op == OpDelete && t.State == Returning:
				s.move(t, OnCard)
			}
		}
		items = items[:room]
	}
	return items, nil
}

func (s *syncer) authorise(t *Ticket, to State, epoch, counter uint32) {
	t.State, t.Epoch, t.Counter = to, epoch, counter
	s.touch(t)
}

// boxed returns this card's tickets in the box, in issue order, but skip
// (an exchange's ticket, which the plan stores first).
func (s *syncer) boxed(skip *Ticket) []*Ticket {
	var out []*Ticket
	for _, t := range s.order {
		if t.State == InBox && t != skip {
			out = append(out, t)
		}
	}
	return out
}

// SortSoonest sorts tickets by use date and time, ties in issue order.
func SortSoonest(ts []*Ticket) { slices.SortStableFunc(ts, soonest) }

// soonest orders tickets by use date and time, ties in issue order.
func soonest(a, b *Ticket) int {
	if c := ticketfmt.CompareUse(a.Date, a.Time, b.Date, b.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// Step is one plan item ready for the card: the command's data with its
// authorisation and MAC.
type Step struct {
	Op Op `json:"op"`
	// Ticket is the ticket ID of a DELETE or STORE.
	Ticket ticketfmt.ID `json:"ticket,omitempty"`
	// Expected is a DELETE's expected state.
	Expected byte `json:"expected_state"`
	// Object is the E1 ticket of a STORE or the E5 certificate of a PUT
	// CERTIFICATE.
	Object []byte `json:"object,omitempty"`
	// Auth is the authorisation 9A.
	Auth cardkeys.Authorisation `json:"-"`
	// MAC is the authorisation's MAC 9B.
	MAC []byte `json:"mac"`
}

// Command returns the step's command APDU.
func (s Step) Command() apdu.Command {
	switch s.Op {
	case OpCertificate:
		return cardproto.PutCertificate(s.Object, s.Auth, s.MAC)
	case OpDelete:
		return cardproto.Delete(s.Ticket, s.Expected, s.Auth, s.MAC)
	}
	return cardproto.Store(s.Object, s.Auth, s.MAC)
}

// Authorise turns a plan into steps: each item with its authorisation
// (the plan's epoch, counter C0 + index) and its MAC under the card's
// K_store. raw returns a STORE's ticket; cert is the card certificate E5
// for a PUT CERTIFICATE.
func Authorise(p Plan, keys cardkeys.Keys, serial ticketfmt.Serial, raw func(ticketfmt.ID) []byte, cert []byte) ([]Step, error) {
	steps := make([]Step, 0, len(p.Items))
	for i, it := range p.Items {
		a := cardkeys.Authorisation{Epoch: p.Epoch, Counter: p.C0 + uint32(i)}
		st := Step{Op: it.Op, Ticket: it.Ticket, Expected: it.Expected, Auth: a}
		switch it.Op {
		case OpCertificate:
			if cert == nil {
				return nil, errors.New("box: a PUT CERTIFICATE needs the card certificate")
			}
			st.Object = cert
			st.MAC = cardkeys.CertMAC(keys, serial, a, cert)
		case OpDelete:
			st.MAC = cardkeys.DeleteMAC(keys, serial, a, it.Ticket, it.Expected)
		case OpStore:
			if st.Object = raw(it.Ticket); st.Object == nil {
				return nil, fmt.Errorf("box: no ticket %v to store", it.Ticket)
			}
			st.MAC = cardkeys.StoreMAC(keys, serial, a, st.Object)
		default:
			return nil, fmt.Errorf("box: unknown operation %q", it.Op)
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// Due returns how many of a card's tickets in the box its next sync will
// store, by the room it last reported.
func Due(card Card, tickets []*Ticket) int { return len(DueTickets(card, tickets)) }

// DueTickets returns the tickets in the box that the card's next sync will
// store, soonest first: the plan's rule (chooseStores), by the room the
// card last reported (free plus reclaimable bytes and tickets) less the
// tickets being delivered.
func DueTickets(card Card, tickets []*Ticket) []*Ticket {
	bytes, count := room(card, tickets, false)
	var boxed []*Ticket
	for _, t := range tickets {
		if t.State == InBox {
			boxed = append(boxed, t)
		}
	}
	return chooseStores(boxed, bytes, count, card.Status.Overhead)
}

// Route decides, for each of an order's new tickets in order, whether the
// card can take it: by the room the card last reported (free plus
// reclaimable bytes and tickets) less the tickets already due to it (being
// delivered, or in the box and Due). A ticket that fits is marked Due
// (direct: delivered at the card's next sync) and takes its room; one that
// does not stays in the box (overflow). held are the card's tickets
// before the order; the caller routes only for a card the box knows (an
// order for a card it has not seen goes to the box); issued are the
// order's new tickets, in the box.
func Route(card Card, held, issued []*Ticket) {
	bytes, count := room(card, held, true)
	h := card.Status.Overhead
	for _, t := range issued {
		if t.Size(h) > bytes || count < 1 {
			continue
		}
		t.Due = true
		bytes, count = bytes-t.Size(h), count-1
	}
}

// room returns the bytes and tickets the card last reported available,
// less those of the tickets being delivered and, with due, of the box's
// Due tickets.
func room(card Card, tickets []*Ticket, due bool) (bytes, count int) {
	st := card.Status
	bytes, count = st.AvailableBytes(), st.AvailableTickets()
	for _, t := range tickets {
		if t.State == Delivering || due && t.State == InBox && t.Due {
			bytes, count = bytes-t.Size(st.Overhead), count-1
		}
	}
	return bytes, count
}

// chooseStores is the plan's rule for the box's tickets: of candidates,
// the Due ones first, then the others, each soonest use first (ties in
// issue order), every one that fits in what is left of bytes and count
// (records of overhead h each); a ticket that does not fit is passed over
// for a later, smaller one. It returns the chosen tickets soonest first.
func chooseStores(candidates []*Ticket, bytes, count, h int) []*Ticket {
	ordered := slices.Clone(candidates)
	slices.SortStableFunc(ordered, func(a, b *Ticket) int {
		switch {
		case a.Due && !b.Due:
			return -1
		case b.Due && !a.Due:
			return 1
		}
		return soonest(a, b)
	})
	var out []*Ticket
	for _, t := range ordered {
		if t.Size(h) > bytes || count < 1 {
			continue
		}
		out = append(out, t)
		bytes, count = bytes-t.Size(h), count-1
	}
	SortSoonest(out)
	return out
}
