package handset

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/ticketfmt"
)

// WatchOptions tune Watch.
type WatchOptions struct {
	// Interval is how often the card's STATUS is polled for a
	// notification (default 1 s).
	Interval time.Duration
	// NoEvents turns off the long poll of the box: then only a
	// notification from the card starts a sync.
	NoEvents bool
	// EventWait is how long one long poll waits on the box (default 25 s).
	EventWait time.Duration
	// OnEvent, when set, is told of each thing Watch does.
	OnEvent func(Event)
}

// EventKind names what happened in watch mode.
type EventKind string

// The kinds of Event.
const (
	// EventSync: a sync ran; Result says what it did.
	EventSync EventKind = "sync"
	// EventNotification: the card raised a notification (FETCHed).
	EventNotification EventKind = "notification"
	// EventDue: the box said tickets are due to the card.
	EventDue EventKind = "due"
	// EventError: something failed; Watch goes on.
	EventError EventKind = "error"
)

// Event is one thing Watch did.
type Event struct {
	Kind EventKind
	// Why is what started a sync ("start", "notification", "due").
	Why string
	// Result is the sync's result (EventSync).
	Result Result
	// Notification is the card's notification (EventNotification).
	Notification *cardproto.Notification
	// Due is the number of tickets the box said were due (EventDue).
	Due int
	// Err is the error (EventError).
	Err error
}

// Watch syncs at once, then keeps the card in step with the box until ctx
// ends: it polls STATUS every Interval and, on a notification (91xx),
// FETCHes it, syncs and answers TERMINAL RESPONSE; and it long-polls the
// box, syncing as soon as the box says tickets are due to the card.
//
// Errors of the box are reported to OnEvent and retried at the next
// occasion; an error of the card (removed, reader gone) ends Watch. A card
// reset is recovered from (SELECT and TERMINAL PROFILE again). Watch returns
// ctx's error when ctx ends.
func (h *Handset) Watch(ctx context.Context, opts WatchOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.EventWait <= 0 {
		opts.EventWait = 25 * time.Second
	}
	emit := func(e Event) {
		if opts.OnEvent != nil {
			opts.OnEvent(e)
		}
	}
	w := &watcher{h: h, emit: emit}
	if err := w.start(ctx); err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: Watch returns once the long poll has
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	due := make(chan int, 1)
	sessions := make(chan string, 1)
	if !opts.NoEvents {
		wg.Go(func() { w.longPoll(ctx, w.serial, opts.EventWait, sessions, due) })
	}
	offer := func(session string) {
		if session == "" || opts.NoEvents {
			return
		}
		select {
		case <-sessions:
		default:
		}
		sessions <- session
	}
	offer(w.session)

	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			err = w.poll(ctx)
		case n := <-due:
			emit(Event{Kind: EventDue, Due: n})
			if _, err = w.sync(ctx, "due"); err == nil {
				err = w.notified(ctx)
			}
		}
		if errors.Is(err, hostlib.ErrCardReset) {
			err = w.start(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		offer(w.session)
	}
}

// watcher is Watch's state, used from its one card goroutine.
type watcher struct {
	h    *Handset
	emit func(Event)
	// last is the card's status after the last sync.
	last *cardproto.StatusTemplate
	// session is the holder's session won by the last sync.
	session string
	// serial is the card's serial, known after the first sync.
	serial ticketfmt.Serial
}

// start selects the applet, asks for notifications and syncs.
func (w *watcher) start(ctx context.Context) error {
	fci, err := w.h.Card.Select(ctx)
	if err != nil {
		return fmt.Errorf("handset: select: %w", err)
	}
	if fci.Status == nil {
		return errors.New("handset: the card gave no status: is this the contact interface?")
	}
	w.serial = fci.Status.Serial
	if err := w.h.Card.TerminalProfile(ctx, cardproto.DefaultProfile); err != nil {
		return fmt.Errorf("handset: TERMINAL PROFILE: %w", err)
	}
	if _, err := w.sync(ctx, "start"); err != nil {
		return err
	}
	return w.notified(ctx)
}

// poll sends STATUS and handles a pending notification.
func (w *watcher) poll(ctx context.Context) error {
	if _, err := w.h.Card.Status(ctx); err != nil {
		return fmt.Errorf("handset: STATUS: %w", err)
	}
	return w.notified(ctx)
}

// notified handles the notifications the card has pending: FETCH, sync
// unless the card is where the last sync left it, TERMINAL RESPONSE.
func (w *watcher) notified(ctx context.Context) error {
	for i := 0; i < 4 && w.h.Card.Pending() > 0; i++ {
		n, err := w.h.Card.Fetch(ctx)
		if err != nil {
			return fmt.Errorf("handset: FETCH: %w", err)
		}
		w.emit(Event{Kind: EventNotification, Notification: &n})
		// Sync unless the card is as the last sync left it with nothing
		// to do: a checked ticket on the card is always work (its
		// DELETE), even when the closing round of the last sync saw it.
		if w.last == nil || n.Status.Checked > 0 || !sameStorage(*w.last, n.Status) {
			ok, err := w.sync(ctx, "notification")
			if err != nil {
				return err
			}
			if !ok {
				// Leave the notification pending: the next poll fetches
				// it again and retries the sync.
				return nil
			}
		}
		if err := w.h.Card.TerminalResponse(ctx, n.Number, 0); err != nil {
			return fmt.Errorf("handset: TERMINAL RESPONSE: %w", err)
		}
	}
	return nil
}

// sync runs one sync and reports whether it succeeded; an error of the
// box is reported to OnEvent, not returned.
func (w *watcher) sync(ctx context.Context, why string) (bool, error) {
	res, err := w.h.Sync(ctx, nil)
	if err != nil {
		if cardError(err) {
			return false, err
		}
		if ctx.Err() != nil {
			return false, ctx.Err() // Watch is ending: not an error of the box
		}
		w.emit(Event{Kind: EventError, Why: why, Err: err})
		return false, nil
	}
	w.last, w.session, w.serial = &res.Status, res.Session, res.Serial
	w.emit(Event{Kind: EventSync, Why: why, Result: res})
	return true, nil
}

// longPoll asks the box for due tickets, with the latest session, until
// ctx ends, and reports each positive answer on due.
func (w *watcher) longPoll(ctx context.Context, serial ticketfmt.Serial, wait time.Duration, sessions <-chan string, due chan<- int) {
	var session string
	backoff := time.Second
	for {
		if session == "" {
			select {
			case <-ctx.Done():
				return
			case session = <-sessions:
			}
		}
		select {
		case session = <-sessions:
		default:
		}
		n, err := w.h.Box.WithToken(session).Events(ctx, serial, wait)
		var ae *apiclient.Error
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, apiclient.ErrNoContent):
			backoff = time.Second
			continue
		case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
			session = "" // wait for the next sync's session
			continue
		case err != nil:
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		select {
		case due <- n:
		case <-ctx.Done():
			return
		}
		// Let the sync run before asking again.
		select {
		case <-ctx.Done():
			return
		case session = <-sessions:
		}
	}
}

// sameStorage reports whether two statuses show the same stored tickets.
func sameStorage(a, b cardproto.StatusTemplate) bool {
	return a.Counter == b.Counter && a.Stored == b.Stored && a.Checked == b.Checked &&
		a.Free == b.Free && a.Reclaimable == b.Reclaimable
}

// cardError reports whether err means the card can no longer be reached:
// Watch ends (or, for a reset, starts over) instead of trying again later.
func cardError(err error) bool {
	return errors.Is(err, hostlib.ErrCardRemoved) || errors.Is(err, hostlib.ErrReaderGone) ||
		errors.Is(err, hostlib.ErrCardReset)
}
