package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// MaxOrderTickets bounds one order.
const MaxOrderTickets = 100

var msisdnPattern = regexp.MustCompile(`^\+?[0-9]{5,15}$`)

// resolveCarrier turns a serial or an MSISDN into a serial.
func resolveCarrier(r *http.Request, tx store.Tx, carrier string) (ticketfmt.Serial, error) {
	carrier = strings.TrimSpace(carrier)
	if s, err := ticketfmt.ParseSerial(carrier); err == nil {
		return s, nil
	}
	if !msisdnPattern.MatchString(carrier) {
		return ticketfmt.Serial{}, errorf(http.StatusBadRequest, "carrier %q is neither a card serial (20 hex digits) nor an MSISDN", carrier)
	}
	s, err := tx.SerialOf(r.Context(), carrier)
	if errors.Is(err, store.ErrNotFound) {
		return s, errorf(http.StatusNotFound, "no card is registered for MSISDN %s", carrier)
	}
	return s, err
}

// orderRecord is what the store keeps under an idempotency key: the
// request's digest and the answer.
type orderRecord struct {
	Digest string          `json:"digest"`
	Answer api.OrderAnswer `json:"answer"`
}

func (s *Server) handleOrder(w http.ResponseWriter, r *http.Request) {
	var req api.OrderRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if h := r.Header.Get("Idempotency-Key"); h != "" {
		if req.IdempotencyKey != "" && req.IdempotencyKey != h {
			s.fail(w, r, errorf(http.StatusBadRequest, "the Idempotency-Key header and idempotency_key differ"))
			return
		}
		req.IdempotencyKey = h
	}
	if err := validateOrder(&req); err != nil {
		s.fail(w, r, err)
		return
	}
	canon, _ := json.Marshal(struct {
		C string
		T []api.OrderTicket
	}{req.Carrier, req.Tickets})
	sum := sha256.Sum256(canon)
	digest := hex.EncodeToString(sum[:])

	var ans api.OrderAnswer
	code := http.StatusCreated
	err := s.updateOrder(r.Context(), func(tx store.Tx) error {
		ans, code = api.OrderAnswer{}, http.StatusCreated
		if rec, err := tx.Order(r.Context(), req.IdempotencyKey); err == nil {
			var prev orderRecord
			if err := json.Unmarshal(rec, &prev); err != nil {
				return err
			}
			if prev.Digest != digest {
				return errorf(http.StatusUnprocessableEntity, "idempotency key %q was used for another order", req.IdempotencyKey)
			}
			ans, code = prev.Answer, http.StatusOK
			ans.Replayed = true
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		serial, err := resolveCarrier(r, tx, req.Carrier)
		if err != nil {
			return err
		}
		card, err := tx.LockCard(r.Context(), serial)
		if err != nil {
			return err
		}
		existing, err := tx.TicketsOf(r.Context(), serial)
		if err != nil {
			return err
		}
		ans = api.OrderAnswer{IdempotencyKey: req.IdempotencyKey, Carrier: serial, Summary: map[string]int{"card": 0, "box": 0}, Issued: s.cfg.Now().UTC()}
		var issued []*box.Ticket
		signer := s.cfg.Keys.Signer()
		for _, ot := range req.Tickets {
			t := ticketfmt.Ticket{Type: ot.Type, Seller: ot.Seller, Date: ot.Date, Time: ot.Time, Price: ot.Price,
				Seat: ot.Seat, Instructions: ot.Instructions, Carrier: serial}
			if _, err := rand.Read(t.ID[:]); err != nil {
				return err
			}
			if err := t.Sign(signer); err != nil {
				return err
			}
			raw, err := t.Marshal()
			if err != nil {
				return err
			}
			issued = append(issued, &box.Ticket{ID: t.ID, Carrier: serial, Raw: raw, Date: t.Date, Time: t.Time, State: box.InBox})
		}
		// Each ticket in order goes to the card (direct) when the card can
		// take it by the room it last reported, less what is already due
		// to it; the next sync stores the due tickets first, so the answer
		// holds whatever is ordered next. A card the box has not seen yet
		// gets everything in the box.
		if card.Registered {
			box.Route(card.Card, existing, issued)
		}
		for _, t := range issued {
			route := "box"
			if t.Due {
				route = "card"
			}
			ans.Tickets = append(ans.Tickets, api.OrderedTicket{ID: t.ID, Route: route, Size: len(t.Raw), Ticket: hex.EncodeToString(t.Raw)})
			ans.Summary[route]++
		}
		if err := tx.InsertTickets(r.Context(), issued); err != nil {
			return err
		}
		if ans.Summary["card"] > 0 {
			// Wakes the handsets watching the card on the other server
			// processes, if any, once this commits.
			if err := tx.NotifyDue(r.Context(), serial); err != nil {
				return err
			}
		}
		rec, err := json.Marshal(orderRecord{Digest: digest, Answer: ans})
		if err != nil {
			return err
		}
		return tx.PutOrder(r.Context(), req.IdempotencyKey, rec)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !ans.Replayed {
		for route, n := range ans.Summary {
			s.metrics.tickets.WithLabelValues(route).Add(float64(n))
		}
		if ans.Summary["card"] > 0 {
			// This process's watchers at once, whatever the store.
			s.broker.notify(ans.Carrier)
		}
	}
	writeJSON(w, code, ans)
}

// updateOrder runs an order's transaction as updateSigning does, and once
// more when its idempotency key was taken meanwhile (store.ErrExists from
// PutOrder: the same order sent again while the first was under way, which
// PostgreSQL lets run side by side): the next run finds the key's order
// and replays it, or refuses another order under the key.
func (s *Server) updateOrder(ctx context.Context, fn func(tx store.Tx) error) error {
	err := s.updateSigning(ctx, fn)
	if errors.Is(err, store.ErrExists) {
		err = s.updateSigning(ctx, fn)
	}
	return err
}

func validateOrder(req *api.OrderRequest) error {
	switch {
	case strings.TrimSpace(req.Carrier) == "":
		return errorf(http.StatusBadRequest, "carrier is required: a card serial or an MSISDN")
	case req.IdempotencyKey == "":
		return errorf(http.StatusBadRequest, "an idempotency key is required (Idempotency-Key header or idempotency_key)")
	case len(req.IdempotencyKey) > 200:
		return errorf(http.StatusBadRequest, "idempotency key longer than 200 characters")
	case !utf8.ValidString(req.IdempotencyKey) || strings.ContainsFunc(req.IdempotencyKey, unicode.IsControl):
		// Every store keeps the key as text (PostgreSQL refuses NUL and
		// invalid UTF-8).
		return errorf(http.StatusBadRequest, "idempotency key %q: want printable UTF-8 text", req.IdempotencyKey)
	case len(req.Tickets) == 0:
		return errorf(http.StatusBadRequest, "an order needs at least one ticket")
	case len(req.Tickets) > MaxOrderTickets:
		return errorf(http.StatusBadRequest, "an order takes at most %d tickets", MaxOrderTickets)
	}
	for i, ot := range req.Tickets {
		t := ticketfmt.Ticket{Seller: ot.Seller, Date: ot.Date, Time: ot.Time, Seat: ot.Seat, Instructions: ot.Instructions}
		if err := t.Validate(); err != nil {
			return errorf(http.StatusBadRequest, "ticket %d: %v", i+1, err)
		}
	}
	return nil
}
