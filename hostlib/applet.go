package hostlib

import (
	"context"
	"fmt"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/ticketfmt"
)

// Applet is a typed client of the simtix ticket applet on one logical
// channel: every command of card-applet.md as a method, answers parsed
// strictly, status words as errors that match the apdu package's sentinels
// (errors.Is(err, apdu.ErrNotEnoughMemory) for 6A84, ...).
type Applet struct {
	c       *Client
	channel int
	// pending is the length of the notification the card last reported
	// pending (91xx), 0 if its last answer was 9000.
	pending int
}

// NewApplet returns a client of the applet on the basic channel of t.
func NewApplet(t Transport, opts ClientOptions) *Applet {
	return &Applet{c: NewClient(t, opts)}
}

// Channel is the logical channel this client sends on.
func (a *Applet) Channel() int { return a.channel }

// Pending returns the length of the storage-changed notification the card
// reported pending in its last answer (91xx), or 0.
func (a *Applet) Pending() int { return a.pending }

// do sends cmd on this client's channel.
func (a *Applet) do(ctx context.Context, op string, cmd apdu.Command) ([]byte, error) {
	if a.channel != 0 {
		cmd = cardproto.OnChannel(cmd, a.channel)
	}
	r, err := a.c.Do(ctx, op, cmd)
	if err == nil || r.SW != 0 {
		a.pending = r.Notification
	}
	if err != nil {
		return nil, err
	}
	return r.Data, nil
}

// Do sends any command on this client's channel and returns its data: for
// commands built elsewhere, such as the steps of a sync plan.
func (a *Applet) Do(ctx context.Context, op string, cmd apdu.Command) ([]byte, error) {
	return a.do(ctx, op, cmd)
}

// Select selects the ticket applet and returns its FCI (the status template
// on the contact interface, the card certificate when the card has one).
func (a *Applet) Select(ctx context.Context) (cardproto.FCI, error) {
	data, err := a.do(ctx, "SELECT", cardproto.Select())
	if err != nil {
		return cardproto.FCI{}, err
	}
	return cardproto.ParseFCI(data)
}

// OpenChannel opens a new logical channel and returns a client on it (with
// nothing selected yet).
func (a *Applet) OpenChannel(ctx context.Context) (*Applet, error) {
	data, err := a.do(ctx, "MANAGE CHANNEL", cardproto.OpenChannel())
	if err != nil {
		return nil, err
	}
	n, err := cardproto.ParseChannel(data)
	if err != nil {
		return nil, err
	}
	return &Applet{c: a.c, channel: n}, nil
}

// CloseChannel closes this client's logical channel (not the basic one).
func (a *Applet) CloseChannel(ctx context.Context) error {
	if a.channel == 0 {
		return fmt.Errorf("hostlib: the basic channel cannot be closed")
	}
	_, err := a.do(ctx, "MANAGE CHANNEL", cardproto.CloseChannel(a.channel))
	return err
}

// Status returns the status template (contact interface, applet selected).
func (a *Applet) Status(ctx context.Context) (cardproto.StatusTemplate, error) {
	data, err := a.do(ctx, "STATUS", cardproto.Status())
	if err != nil {
		return cardproto.StatusTemplate{}, err
	}
	if len(data) == 0 {
		return cardproto.StatusTemplate{}, fmt.Errorf("hostlib: STATUS: %w (is the applet selected on channel %d?)", apdu.ErrNotSelected, a.channel)
	}
	return cardproto.ParseStatus(data)
}

// TerminalProfile tells the card that the handset takes its notifications.
func (a *Applet) TerminalProfile(ctx context.Context, profile []byte) error {
	_, err := a.do(ctx, "TERMINAL PROFILE", cardproto.TerminalProfile(profile))
	return err
}

// Fetch returns the pending storage-changed notification.
func (a *Applet) Fetch(ctx context.Context) (cardproto.Notification, error) {
	data, err := a.do(ctx, "FETCH", cardproto.Fetch())
	if err != nil {
		return cardproto.Notification{}, err
	}
	return cardproto.ParseNotification(data)
}

// TerminalResponse acknowledges notification number with a result (0:
// done).
func (a *Applet) TerminalResponse(ctx context.Context, number, result byte) error {
	_, err := a.do(ctx, "TERMINAL RESPONSE", cardproto.TerminalResponse(number, result))
	return err
}

// List returns the inventory, parsed, and the exact bytes the card sent
// (which BEGIN SYNC's digest covers).
func (a *Applet) List(ctx context.Context) ([]cardproto.Entry, []byte, error) {
	data, err := a.do(ctx, "LIST", cardproto.List())
	if err != nil {
		return nil, nil, err
	}
	entries, err := cardproto.ParseList(data)
	return entries, data, err
}

// Read returns one ticket and its state.
func (a *Applet) Read(ctx context.Context, id ticketfmt.ID) (cardproto.TicketState, error) {
	data, err := a.do(ctx, "READ", cardproto.Read(id))
	if err != nil {
		return cardproto.TicketState{}, err
	}
	return cardproto.ParseTicketState(data)
}

// Find returns the first unchecked ticket matching q (contactless).
func (a *Applet) Find(ctx context.Context, q cardproto.Query) (cardproto.TicketState, error) {
	data, err := a.do(ctx, "FIND", cardproto.Find(q))
	if err != nil {
		return cardproto.TicketState{}, err
	}
	return cardproto.ParseTicketState(data)
}

// Check marks a ticket checked by gate at time when (contactless) and
// returns the card's receipt over nonce.
func (a *Applet) Check(ctx context.Context, id ticketfmt.ID, c cardproto.CheckRecord, nonce [cardkeys.NonceSize]byte) ([]byte, error) {
	data, err := a.do(ctx, "CHECK", cardproto.Check(id, c.Gate, c.Time, nonce))
	if err != nil {
		return nil, err
	}
	return cardproto.ParseReceipt(data)
}

// BeginSync starts a sync over the box's challenge and returns the card's
// answer, parsed, with its exact bytes (for the box to check).
func (a *Applet) BeginSync(ctx context.Context, challenge [cardkeys.ChallengeSize]byte) (cardproto.SyncAnswer, []byte, error) {
	data, err := a.do(ctx, "BEGIN SYNC", cardproto.BeginSync(challenge))
	if err != nil {
		return cardproto.SyncAnswer{}, nil, err
	}
	ans, err := cardproto.ParseSync(data)
	return ans, data, err
}

// Store stores a ticket under an authorisation and its MAC.
func (a *Applet) Store(ctx context.Context, ticketE1 []byte, auth cardkeys.Authorisation, mac []byte) error {
	_, err := a.do(ctx, "STORE", cardproto.Store(ticketE1, auth, mac))
	return err
}

// Delete deletes a ticket in the expected state under an authorisation.
func (a *Applet) Delete(ctx context.Context, id ticketfmt.ID, expected byte, auth cardkeys.Authorisation, mac []byte) error {
	_, err := a.do(ctx, "DELETE", cardproto.Delete(id, expected, auth, mac))
	return err
}

// PutCertificate gives the card its certificate under an authorisation.
func (a *Applet) PutCertificate(ctx context.Context, certE5 []byte, auth cardkeys.Authorisation, mac []byte) error {
	_, err := a.do(ctx, "PUT CERTIFICATE", cardproto.PutCertificate(certE5, auth, mac))
	return err
}
