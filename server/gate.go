package server

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// MaxJournal bounds the records of one journal upload.
const MaxJournal = 1000

// parseCheckTime reads YYYY-MM-DDThh:mm:ss.
func parseCheckTime(s string) (ticketfmt.DateTime, error) {
	d, t, ok := strings.Cut(s, "T")
	date, err := ticketfmt.ParseDate(d)
	if !ok || err != nil || len(t) != 8 {
		return ticketfmt.DateTime{}, fmt.Errorf("check time %q: want YYYY-MM-DDThh:mm:ss", s)
	}
	var h, m, sec int
	if _, err := fmt.Sscanf(t, "%02d:%02d:%02d", &h, &m, &sec); err != nil {
		return ticketfmt.DateTime{}, fmt.Errorf("check time %q: want YYYY-MM-DDThh:mm:ss", s)
	}
	dt := ticketfmt.DateTime{Date: date, Hour: h, Minute: m, Second: sec}
	if !dt.Valid() {
		return ticketfmt.DateTime{}, fmt.Errorf("check time %q: no such time", s)
	}
	return dt, nil
}

// handleJournal records a gate's checks. Uploading the same record twice is
// harmless; two different checks of one ticket flag it (a cloned card). A
// record whose receipt does not verify with the card's registered key is
// rejected, and so is one for a card with no registered key.
func (s *Server) handleJournal(w http.ResponseWriter, r *http.Request) {
	var req api.JournalRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Checks) > MaxJournal {
		s.fail(w, r, errorf(http.StatusBadRequest, "at most %d records per upload", MaxJournal))
		return
	}
	type parsed struct {
		c   store.Check
		rec api.JournalRecord
	}
	var checks []parsed
	var ans api.JournalAnswer
	for i, rec := range req.Checks {
		c := store.Check{TicketID: rec.TicketID, Serial: rec.Serial, Received: s.cfg.Now().UTC()}
		gate, err1 := hexField("gate_id", rec.GateID, cardkeys.GateIDSize)
		nonce, err2 := hexField("nonce", rec.Nonce, cardkeys.NonceSize)
		receipt, err3 := hexField("receipt", rec.Receipt, ticketfmt.SignatureSize)
		when, err4 := parseCheckTime(rec.Time)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			s.fail(w, r, errorf(http.StatusBadRequest, "record %d: %v", i+1, err))
			return
		}
		copy(c.Gate[:], gate)
		c.Time, c.Nonce, c.Receipt = when, nonce, receipt
		checks = append(checks, parsed{c, rec})
	}
	// The cards' locks, as their syncs take them, in serial order (so two
	// uploads cannot deadlock): a sync under way moves the cards' tickets,
	// and each ticket's state is read once it has committed.
	serials := make([]ticketfmt.Serial, 0, len(checks))
	for _, p := range checks {
		serials = append(serials, p.c.Serial)
	}
	slices.SortFunc(serials, func(a, b ticketfmt.Serial) int { return bytes.Compare(a[:], b[:]) })
	serials = slices.Compact(serials)
	err := s.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		ans = api.JournalAnswer{}
		cards := make(map[ticketfmt.Serial]*store.Card, len(serials))
		for _, serial := range serials {
			// LockCard would create a card it has never seen: look first.
			card, err := tx.Card(r.Context(), serial)
			if err == nil {
				card, err = tx.LockCard(r.Context(), serial)
			}
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			cards[serial] = card
		}
		for _, p := range checks {
			c := p.c
			t, err := tx.Ticket(r.Context(), c.TicketID)
			if errors.Is(err, store.ErrNotFound) {
				ans.Rejected = append(ans.Rejected, fmt.Sprintf("ticket %v: unknown", c.TicketID))
				continue
			}
			if err != nil {
				return err
			}
			if t.Carrier != c.Serial {
				ans.Rejected = append(ans.Rejected, fmt.Sprintf("ticket %v: bound to card %v, not %v", c.TicketID, t.Carrier, c.Serial))
				continue
			}
			// A card with no registered key was never certified: no gate
			// can have checked its tickets, and no receipt can verify.
			card := cards[c.Serial]
			if card == nil || len(card.PublicKey) == 0 {
				ans.Rejected = append(ans.Rejected, fmt.Sprintf("ticket %v: card %v has no registered key (it never synced)", c.TicketID, c.Serial))
				continue
			}
			pub, err := ticketfmt.DecodePublicKey(card.PublicKey)
			if err != nil {
				ans.Rejected = append(ans.Rejected, fmt.Sprintf("ticket %v: card %v's registered key is not a P-256 key", c.TicketID, c.Serial))
				continue
			}
			if err := cardproto.VerifyReceipt(pub, c.Serial, t.Raw, cardproto.CheckRecord{Gate: c.Gate, Time: c.Time}, c.Nonce, c.Receipt); err != nil {
				ans.Rejected = append(ans.Rejected, fmt.Sprintf("ticket %v: the receipt does not verify with the card's key", c.TicketID))
				continue
			}
			added, err := tx.AddCheck(r.Context(), c)
			if err != nil {
				return err
			}
			if !added {
				ans.Duplicates++
				continue
			}
			ans.Accepted++
			all, err := tx.ChecksOf(r.Context(), c.TicketID)
			if err != nil {
				return err
			}
			// Two different checks of one ticket: two journal records, or a
			// record and the check a card's inventory showed.
			other := (*box.Check)(nil)
			switch {
			case len(all) > 1:
				other = &box.Check{Gate: all[0].Gate, Time: all[0].Time}
			case t.State == box.Checked && t.Check != nil && (t.Check.Gate != c.Gate || t.Check.Time != c.Time):
				other = t.Check
			}
			if other != nil {
				ans.CheckedTwice = append(ans.CheckedTwice, c.TicketID)
				if err := s.flag(r, tx, c.Serial, fmt.Sprintf("ticket %v checked twice (gate %X at %v and gate %X at %v): a cloned card?",
					c.TicketID, other.Gate, other.Time, c.Gate, c.Time)); err != nil {
					return err
				}
			}
			if t.State != box.Checked {
				from := t.State
				t.State, t.Epoch, t.Counter = box.Checked, 0, 0
				t.Check = &box.Check{Gate: c.Gate, Time: c.Time, Source: "gate"}
				if err := tx.MoveTicket(r.Context(), t, from); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) flag(r *http.Request, tx store.Tx, serial ticketfmt.Serial, why string) error {
	card, err := tx.LockCard(r.Context(), serial)
	if err != nil {
		return err
	}
	card.Flags = append(card.Flags, why)
	s.log.Warn("card flagged", "card", serial.String(), "why", why)
	return tx.PutCard(r.Context(), card)
}

func (s *Server) handleDeny(w http.ResponseWriter, r *http.Request) {
	var ids []ticketfmt.ID
	err := s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		var err error
		ids, err = tx.DenyList(r.Context())
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ids == nil {
		ids = []ticketfmt.ID{}
	}
	writeJSON(w, http.StatusOK, api.DenyAnswer{Tickets: ids})
}

func view(t *box.Ticket) (api.TicketView, error) {
	tk, err := ticketfmt.Unmarshal(t.Raw)
	if err != nil {
		return api.TicketView{}, err
	}
	v := api.TicketView{ID: t.ID, State: t.State, OrderTicket: api.OrderTicket{Type: tk.Type, Seller: tk.Seller, Date: tk.Date,
		Time: tk.Time, Price: tk.Price, Seat: tk.Seat, Instructions: tk.Instructions}, Size: len(t.Raw), Due: t.State == box.InBox && t.Due}
	if t.Check != nil {
		v.CheckedBy = fmt.Sprintf("%x", t.Check.Gate)
		v.CheckedAt = t.Check.Time.String()
	}
	return v, nil
}

// tickets answers a carrier's tickets, and for the operator the card's
// flags.
func (s *Server) tickets(r *http.Request, carrier func(tx store.Tx) (ticketfmt.Serial, error)) (api.TicketsAnswer, error) {
	var ans api.TicketsAnswer
	err := s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		serial, err := carrier(tx)
		if err != nil {
			return err
		}
		ts, err := tx.TicketsOf(r.Context(), serial)
		if err != nil {
			return err
		}
		ans = api.TicketsAnswer{Carrier: serial, Tickets: make([]api.TicketView, 0, len(ts))}
		for _, t := range ts {
			v, err := view(t)
			if err != nil {
				return err
			}
			ans.Tickets = append(ans.Tickets, v)
		}
		if !tokenEqual(bearer(r), s.cfg.Keys.OperatorToken()) {
			return nil
		}
		card, err := tx.Card(r.Context(), serial)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ans.Flags = card.Flags
		return nil
	})
	return ans, err
}

func (s *Server) handleCardTickets(w http.ResponseWriter, r *http.Request) {
	serial, err := s.cardOfCaller(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ans, err := s.tickets(r, func(store.Tx) (ticketfmt.Serial, error) { return serial, nil })
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) handleCarrierTickets(w http.ResponseWriter, r *http.Request) {
	ans, err := s.tickets(r, func(tx store.Tx) (ticketfmt.Serial, error) {
		return resolveCarrier(r, tx, r.PathValue("carrier"))
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) handleMSISDN(w http.ResponseWriter, r *http.Request) {
	serial, err := parseSerial(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req struct {
		MSISDN string `json:"msisdn"`
	}
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !msisdnPattern.MatchString(req.MSISDN) {
		s.fail(w, r, errorf(http.StatusBadRequest, "msisdn %q: want 5 to 15 digits, optionally after +", req.MSISDN))
		return
	}
	err = s.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		if _, err := tx.LockCard(r.Context(), serial); err != nil {
			return err
		}
		err := tx.SetMSISDN(r.Context(), serial, req.MSISDN)
		if errors.Is(err, store.ErrExists) {
			return errorf(http.StatusConflict, "MSISDN %s is registered for another card", req.MSISDN)
		}
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
