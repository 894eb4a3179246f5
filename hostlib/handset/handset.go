// Package handset is the handset role of simtix: it syncs a card with the
// virtual ticket box (network.md, "Sync"): a challenge from the box, BEGIN
// SYNC and LIST from the card, the box's plan run in order, and a closing
// BEGIN SYNC and LIST so that the box settles the plan at once.
//
// A sync is safe to repeat and safe to interrupt anywhere: the next one
// settles whatever the card did.
package handset

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/ticketfmt"
)

// maxRestarts bounds the restarts of a sync whose LIST changed under it.
const maxRestarts = 3

// Handset syncs one card with one box.
type Handset struct {
	// Card is the ticket applet on the card's contact interface.
	Card *hostlib.Applet
	// Box is the server. A sync needs no token; the holder's session it
	// wins is in its Result (Watch's long poll uses it through
	// Client.WithToken), and Box is left as it is.
	Box *apiclient.Client
}

// Result is what a sync did.
type Result struct {
	Serial ticketfmt.Serial
	// Steps is the number of plan steps the card applied.
	Steps int
	// Planned is the number of steps in the plan.
	Planned int
	// Refused is the status word of the first step the card refused, or 0.
	Refused apdu.StatusWord
	// Status is the card's status after the sync, as the closing BEGIN
	// SYNC reported it to the box.
	Status cardproto.StatusTemplate
	// Waiting is the number of the card's tickets left in the box.
	Waiting int
	// Session is the holder's session the sync won.
	Session string
	// SessionExpires is when the box says Session expires, by the box's
	// clock (zero if the box did not say).
	SessionExpires time.Time
}

// Exchange asks for ticket Take from the box in place of ticket Give.
type Exchange = api.ExchangeRequest

// Sync runs one sync. With ex, the box plans the exchange.
func (h *Handset) Sync(ctx context.Context, ex *Exchange) (Result, error) {
	fci, err := h.Card.Select(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("handset: select: %w", err)
	}
	if fci.Status == nil {
		return Result{}, errors.New("handset: the card gave no status: is this the contact interface?")
	}
	serial := fci.Status.Serial
	res := Result{Serial: serial}
	_, ans, err := h.round(ctx, serial, false, ex)
	if err != nil {
		return res, err
	}
	res.Planned = len(ans.Steps)
	for _, st := range ans.Steps {
		cmd, err := command(st)
		if err != nil {
			return res, err
		}
		_, err = h.Card.Do(ctx, st.Op, cmd)
		var ae *apdu.Error
		if errors.As(err, &ae) {
			res.Refused = ae.SW
			break
		}
		if err != nil {
			return res, fmt.Errorf("handset: step %d (%s): %w", res.Steps+1, st.Op, err)
		}
		res.Steps++
	}
	card, closing, err := h.round(ctx, serial, true, nil)
	if err != nil {
		return res, err
	}
	// The status the box settled on: a change after it (a gate's check)
	// raises a notification of its own.
	res.Waiting, res.Status = closing.Waiting, card.Status
	res.Session, res.SessionExpires = closing.Session, closing.SessionExpires
	return res, nil
}

// round is one challenge, BEGIN SYNC, LIST and answer of the box,
// started over if the box finds that LIST changed under it.
func (h *Handset) round(ctx context.Context, serial ticketfmt.Serial, final bool, ex *Exchange) (cardproto.SyncAnswer, api.SyncAnswer, error) {
	for attempt := 0; ; attempt++ {
		ch, err := h.Box.Challenge(ctx, serial)
		if err != nil {
			return cardproto.SyncAnswer{}, api.SyncAnswer{}, fmt.Errorf("handset: challenge: %w", err)
		}
		raw, err := hex.DecodeString(ch.Challenge)
		if err != nil || len(raw) != cardkeys.ChallengeSize {
			return cardproto.SyncAnswer{}, api.SyncAnswer{}, fmt.Errorf("handset: the box's challenge %q is not 16 bytes of hex", ch.Challenge)
		}
		var c [cardkeys.ChallengeSize]byte
		copy(c[:], raw)
		card, e4, err := h.Card.BeginSync(ctx, c)
		if err != nil {
			return cardproto.SyncAnswer{}, api.SyncAnswer{}, fmt.Errorf("handset: BEGIN SYNC: %w", err)
		}
		_, list, err := h.Card.List(ctx)
		if err != nil {
			return cardproto.SyncAnswer{}, api.SyncAnswer{}, fmt.Errorf("handset: LIST: %w", err)
		}
		ans, err := h.Box.Sync(ctx, serial, api.SyncRequest{Challenge: ch.Challenge, BeginSync: hex.EncodeToString(e4),
			List: hex.EncodeToString(list), Final: final, Exchange: ex})
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Status == http.StatusConflict && attempt < maxRestarts {
			continue
		}
		if err != nil {
			return cardproto.SyncAnswer{}, api.SyncAnswer{}, fmt.Errorf("handset: sync: %w", err)
		}
		return card, ans, nil
	}
}

// command builds a plan step's APDU.
func command(st api.Step) (apdu.Command, error) {
	auth, err := hex.DecodeString(st.Auth)
	if err != nil {
		return apdu.Command{}, fmt.Errorf("handset: step auth: %w", err)
	}
	a, err := cardkeys.ParseAuthorisation(auth)
	if err != nil {
		return apdu.Command{}, fmt.Errorf("handset: step auth: %w", err)
	}
	mac, err := hex.DecodeString(st.MAC)
	if err != nil || len(mac) != cardkeys.MACSize {
		return apdu.Command{}, fmt.Errorf("handset: step MAC %q", st.MAC)
	}
	obj, err := hex.DecodeString(st.Object)
	if err != nil {
		return apdu.Command{}, fmt.Errorf("handset: step object: %w", err)
	}
	switch st.Op {
	case "PUT CERTIFICATE":
		return cardproto.PutCertificate(obj, a, mac), nil
	case "STORE":
		return cardproto.Store(obj, a, mac), nil
	case "DELETE":
		id, err := ticketfmt.ParseID(st.Ticket)
		if err != nil || st.ExpectedState == nil {
			return apdu.Command{}, fmt.Errorf("handset: DELETE step without its ticket or expected state")
		}
		return cardproto.Delete(id, *st.ExpectedState, a, mac), nil
	}
	return apdu.Command{}, fmt.Errorf("handset: unknown step %q", st.Op)
}

// SignIn wins a holder's session for the card without running a plan: one
// challenge, BEGIN SYNC and LIST, sent as a closing round, which the box
// settles and answers with a session. It returns the session and the
// card's serial.
func (h *Handset) SignIn(ctx context.Context) (string, ticketfmt.Serial, error) {
	fci, err := h.Card.Select(ctx)
	if err != nil {
		return "", ticketfmt.Serial{}, fmt.Errorf("handset: select: %w", err)
	}
	if fci.Status == nil {
		return "", ticketfmt.Serial{}, errors.New("handset: the card gave no status: is this the contact interface?")
	}
	_, ans, err := h.round(ctx, fci.Status.Serial, true, nil)
	if err != nil {
		return "", fci.Status.Serial, err
	}
	return ans.Session, fci.Status.Serial, nil
}
