package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	serial, err := parseSerial(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var c [cardkeys.ChallengeSize]byte
	if _, err := rand.Read(c[:]); err != nil {
		s.fail(w, r, err)
		return
	}
	expires := s.cfg.Now().Add(s.cfg.ChallengeTTL)
	err = s.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		return tx.PutChallenge(r.Context(), serial, c[:], expires)
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.ChallengeAnswer{Challenge: hex.EncodeToString(c[:]), Expires: expires.UTC()})
}

func hexField(name, v string, size int) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(v, " ", ""))
	if err != nil || (size >= 0 && len(b) != size) {
		if size >= 0 {
			return nil, errorf(http.StatusBadRequest, "%s: want %d bytes in hex", name, size)
		}
		return nil, errorf(http.StatusBadRequest, "%s: not hex", name)
	}
	return b, nil
}

// handleSync accepts a card's authenticated BEGIN SYNC and LIST answers,
// settles the previous plan, and answers the next one: accepting, settling
// and keeping the plan are one transaction, committed before the answer.
func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	serial, err := parseSerial(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req api.SyncRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	challenge, err := hexField("challenge", req.Challenge, cardkeys.ChallengeSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e4, err := hexField("begin_sync", req.BeginSync, -1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := hexField("list", req.List, -1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ans, err := cardproto.ParseSync(e4)
	if err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "begin_sync: %v", err))
		return
	}
	if ans.Status.Serial != serial {
		s.fail(w, r, errorf(http.StatusBadRequest, "begin_sync is card %v's answer, not %v's", ans.Status.Serial, serial))
		return
	}
	// A card's first sync registers its key: it must be a key (a final
	// sync certifies nothing, so nothing else would check it).
	if _, err := ticketfmt.DecodePublicKey(ans.PublicKey); err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "begin_sync: card public key: %v", err))
		return
	}
	keys, err := cardkeys.Derive(s.cfg.Keys.Master(), serial)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := ans.Verify(keys, challenge); err != nil {
		s.fail(w, r, errorf(http.StatusForbidden, "the card's answer does not authenticate (wrong card keys or challenge)"))
		return
	}
	if err := ans.CheckInventory(list); err != nil {
		s.fail(w, r, errorf(http.StatusConflict, "list does not match the inventory digest of begin_sync: start the sync over"))
		return
	}
	entries, err := cardproto.ParseList(list)
	if err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "list: %v", err))
		return
	}
	var ex *box.Exchange
	if req.Exchange != nil {
		ex = &box.Exchange{Give: req.Exchange.Give, Take: req.Exchange.Take}
	}
	now := s.cfg.Now()

	var out api.SyncAnswer
	var logLines []string
	err = s.updateSigning(r.Context(), func(tx store.Tx) error {
		if err := tx.TakeChallenge(r.Context(), serial, challenge, now); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorf(http.StatusForbidden, "challenge unknown for this card, already used or expired: ask for a new one")
			}
			return err
		}
		card, err := tx.LockCard(r.Context(), serial)
		if err != nil {
			return err
		}
		if card.Registered {
			if ans.Status.Epoch <= card.Epoch {
				return errorf(http.StatusConflict, "epoch %d is not after the last accepted %d: a replayed or out-of-order answer", ans.Status.Epoch, card.Epoch)
			}
			if !bytes.Equal(card.PublicKey, ans.PublicKey) {
				return errorf(http.StatusForbidden, "the card's key is not the one registered for %v", serial)
			}
		} else {
			card.PublicKey = ans.PublicKey
			card.Serial = serial
		}
		tickets, err := tx.TicketsOf(r.Context(), serial)
		if err != nil {
			return err
		}
		res, err := box.Sync(card.Card, tickets, box.Observation{Status: ans.Status, Inventory: entries}, req.Final, ex)
		if errors.Is(err, box.ErrExchange) {
			return errorf(http.StatusUnprocessableEntity, "%v", err)
		}
		if err != nil {
			return err
		}
		for _, c := range res.Changes {
			if err := tx.MoveTicket(r.Context(), c.Ticket, c.From); err != nil {
				return err
			}
		}
		card.Card = res.Card
		card.Registered = true
		if err := tx.PutCard(r.Context(), card); err != nil {
			return err
		}
		var cert []byte
		if len(res.Plan.Items) > 0 && res.Plan.Items[0].Op == box.OpCertificate {
			if cert, err = s.certify(serial, ans.PublicKey); err != nil {
				return err
			}
		}
		raw := map[ticketfmt.ID][]byte{}
		waiting := 0
		for _, t := range tickets {
			raw[t.ID] = t.Raw
		}
		for _, c := range res.Changes {
			raw[c.Ticket.ID] = c.Ticket.Raw
		}
		steps, err := box.Authorise(res.Plan, keys, serial, func(id ticketfmt.ID) []byte { return raw[id] }, cert)
		if err != nil {
			return err
		}
		final := map[ticketfmt.ID]box.State{}
		for _, t := range tickets {
			final[t.ID] = t.State
		}
		for _, c := range res.Changes {
			final[c.Ticket.ID] = c.Ticket.State
		}
		for _, st := range final {
			if st == box.InBox {
				waiting++
			}
		}
		out = api.SyncAnswer{Epoch: res.Plan.Epoch, Counter: res.Plan.C0, Steps: make([]api.Step, 0, len(steps)), Waiting: waiting}
		for _, st := range steps {
			out.Steps = append(out.Steps, stepOf(st))
		}
		logLines = res.Log
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, l := range logLines {
		s.log.Warn("sync disagreement", "card", serial.String(), "detail", l)
	}
	kind := "plan"
	if req.Final {
		kind = "final"
	}
	s.metrics.syncs.WithLabelValues(kind).Inc()
	out.Session, out.SessionExpires = s.newSession(serial)
	writeJSON(w, http.StatusOK, out)
}

// certify signs the card certificate for a card's first key.
func (s *Server) certify(serial ticketfmt.Serial, pub []byte) ([]byte, error) {
	key, err := ticketfmt.DecodePublicKey(pub)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "card public key: %v", err)
	}
	c := ticketfmt.Certificate{Serial: serial, PublicKey: key}
	if err := c.Sign(s.cfg.Keys.Signer()); err != nil {
		return nil, err
	}
	return c.Marshal()
}

// Sessions are stateless: serial ‖ expiry, MACed with a key derived from
// the master secret, so that every server instance on one database accepts
// them.
func (s *Server) newSession(serial ticketfmt.Serial) (string, time.Time) {
	exp := s.cfg.Now().Add(s.cfg.SessionTTL).UTC().Truncate(time.Second)
	payload := make([]byte, ticketfmt.SerialSize+8)
	copy(payload, serial[:])
	binary.BigEndian.PutUint64(payload[ticketfmt.SerialSize:], uint64(exp.Unix()))
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write(payload)
	tag := m.Sum(nil)[:16]
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(tag), exp
}

// sessionSerial returns the card a holder's session token is for.
func (s *Server) sessionSerial(token string) (ticketfmt.Serial, bool) {
	p, t, ok := strings.Cut(token, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	tag, err2 := base64.RawURLEncoding.DecodeString(t)
	if !ok || err1 != nil || err2 != nil || len(payload) != ticketfmt.SerialSize+8 {
		return ticketfmt.Serial{}, false
	}
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write(payload)
	if !hmac.Equal(tag, m.Sum(nil)[:16]) {
		return ticketfmt.Serial{}, false
	}
	if s.cfg.Now().Unix() > int64(binary.BigEndian.Uint64(payload[ticketfmt.SerialSize:])) {
		return ticketfmt.Serial{}, false
	}
	var serial ticketfmt.Serial
	copy(serial[:], payload)
	return serial, true
}

// cardOfCaller returns the serial in the request's path once the request
// may see that card's tickets: the operator token, or a session won by
// that card.
func (s *Server) cardOfCaller(r *http.Request) (ticketfmt.Serial, error) {
	serial, err := parseSerial(r)
	if err != nil {
		return serial, err
	}
	tok := bearer(r)
	if tokenEqual(tok, s.cfg.Keys.OperatorToken()) {
		return serial, nil
	}
	if got, ok := s.sessionSerial(tok); ok {
		if got == serial {
			return serial, nil
		}
		return serial, errorf(http.StatusForbidden, "this session is for another card")
	}
	return serial, errorf(http.StatusUnauthorized, "an operator token or a session won by the card (sync) is required")
}

// due counts the tickets in the box that the card's next sync would store.
func (s *Server) due(r *http.Request, serial ticketfmt.Serial) (int, error) {
	n := 0
	err := s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		card, err := tx.Card(r.Context(), serial)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil || !card.Registered {
			return err
		}
		ts, err := tx.TicketsOf(r.Context(), serial)
		if err != nil {
			return err
		}
		n = box.Due(card.Card, ts)
		return nil
	})
	return n, err
}

// handleEvents is the watching handset's long poll: it answers at once
// when tickets are due to the card, else when an order makes some due (an
// order this process takes, or with a store.Notifier any process), else
// 204 after the wait (?wait=SECONDS, at most the server's MaxWait).
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	serial, err := s.cardOfCaller(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait := s.cfg.MaxWait
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, r, errorf(http.StatusBadRequest, "wait=%q: want a whole number of seconds", v))
			return
		}
		wait = min(time.Duration(min(n, 1<<20))*time.Second, wait)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Subscribe first, then look: an order committed after the look
		// wakes this waiter.
		ch, stop := s.broker.wait(serial)
		n, err := s.due(r, serial)
		if err != nil {
			stop()
			s.fail(w, r, err)
			return
		}
		if n > 0 {
			stop()
			writeJSON(w, http.StatusOK, api.EventAnswer{Due: n})
			return
		}
		s.metrics.watching.Inc()
		woken := false
		select {
		case <-ch:
			woken = true
		case <-deadline.C:
		case <-r.Context().Done():
		}
		s.metrics.watching.Dec()
		stop()
		switch {
		case r.Context().Err() != nil:
			return
		case !woken:
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// Look again: a wake-up says that tickets may be due, not how
		// many (a sync may have taken them already); and the listener for
		// other server processes wakes every waiter when it comes back.
	}
}

func stepOf(s box.Step) api.Step {
	out := api.Step{Op: string(s.Op), Auth: hex.EncodeToString(s.Auth.Bytes()), MAC: hex.EncodeToString(s.MAC)}
	if s.Op != box.OpCertificate {
		out.Ticket = s.Ticket.String()
	}
	if s.Op == box.OpDelete {
		e := s.Expected
		out.ExpectedState = &e
	}
	if s.Object != nil {
		out.Object = hex.EncodeToString(s.Object)
	}
	return out
}
