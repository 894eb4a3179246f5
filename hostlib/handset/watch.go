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
	// Why is what started a sync (or the sync that failed): "start",
	// "notification", "due", "session" (to renew the holder's session
	// before it expires, or when the box refused it) or "retry" (after a
	// sync that failed).
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

// Timing of Watch's retries and session renewals.
const (
	// retryMin and retryMax bound the wait before a failed sync is tried
	// again: it doubles from retryMin at each failure, up to retryMax,
	// and starts over after a sync succeeds. The long poll waits as much
	// after an error of the box.
	retryMin = time.Second
	retryMax = 30 * time.Second
	// renewMargin is how long before its session expires Watch renews it
	// at most (a fifth of the session's life when that is shorter).
	renewMargin = time.Minute
)

// Watch syncs at once, then keeps the card in step with the box until ctx
// ends: it polls STATUS every Interval and, on a notification (91xx),
// FETCHes it, syncs and answers TERMINAL RESPONSE; and it long-polls the
// box, syncing as soon as the box says tickets are due to the card.
//
// The long poll uses the holder's session that the last sync won. Watch
// renews the session by syncing (which also stores whatever is due): a
// little before it expires, by the expiry the box gave, and at once when
// the box refuses it.
//
// Errors of the box are reported to OnEvent and the failed sync is tried
// again (as "retry"), after a wait that grows from 1 s to 30 s while the
// box keeps failing; so is a failed first sync, so that Watch wins its
// session once the box is back. A notification is answered only after a
// sync succeeded. An error of the card (removed, reader gone) ends Watch.
// A card reset is recovered from (SELECT and TERMINAL PROFILE again).
// Watch returns ctx's error when ctx ends.
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
	w := &watcher{h: h, emit: emit, backoff: retryMin}
	if !opts.NoEvents {
		w.sessions = make(chan string, 1)
	}
	if err := w.start(ctx); err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: Watch returns once the long poll has
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	due := make(chan int, 1)
	refused := make(chan string, 1)
	if !opts.NoEvents {
		box, serial := h.Box, w.serial
		wg.Go(func() { longPoll(ctx, box, serial, opts.EventWait, w.sessions, due, refused) })
	}

	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	next := time.NewTimer(time.Hour)
	defer next.Stop()
	for {
		// The sync to run later, if any: a retry or a renewal.
		var wake <-chan time.Time
		if w.nextAt.IsZero() {
			next.Stop()
		} else {
			next.Reset(time.Until(w.nextAt))
			wake = next.C
		}
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			err = w.poll(ctx)
		case n := <-due:
			emit(Event{Kind: EventDue, Due: n})
			err = w.syncAndAnswer(ctx, "due")
		case s := <-refused:
			// A session older than the current one is no news: the long
			// poll takes the current one next.
			if s == w.session {
				err = w.syncAndAnswer(ctx, "session")
			}
		case <-wake:
			err = w.syncAndAnswer(ctx, w.nextWhy)
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
	// serial is the card's serial, known after the first SELECT.
	serial ticketfmt.Serial
	// sessions hands each new session to the long poll (nil without it).
	sessions chan string
	// nextAt is when to sync next of Watch's own accord (zero: no such
	// sync), and nextWhy why: "retry" after a failed sync, "session" to
	// renew the session before it expires.
	nextAt  time.Time
	nextWhy string
	// backoff is the wait before the next retry if this sync fails.
	backoff time.Duration
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
	return w.syncAndAnswer(ctx, "start")
}

// poll sends STATUS and handles a pending notification.
func (w *watcher) poll(ctx context.Context) error {
	if _, err := w.h.Card.Status(ctx); err != nil {
		return fmt.Errorf("handset: STATUS: %w", err)
	}
	return w.notified(ctx)
}

// syncAndAnswer syncs and, if the sync succeeded, handles the
// notifications the card has pending.
func (w *watcher) syncAndAnswer(ctx context.Context, why string) error {
	ok, err := w.sync(ctx, why)
	if err != nil || !ok {
		return err
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
// box is reported to OnEvent, not returned, and schedules a retry. A
// success hands the new session to the long poll and schedules its
// renewal.
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
		w.nextAt, w.nextWhy = time.Now().Add(w.backoff), "retry"
		w.backoff = min(2*w.backoff, retryMax)
		return false, nil
	}
	w.last, w.session, w.serial = &res.Status, res.Session, res.Serial
	w.backoff = retryMin
	w.nextAt, w.nextWhy = time.Time{}, ""
	if w.sessions != nil {
		if at, ok := renewal(time.Now(), res.SessionExpires); ok {
			w.nextAt, w.nextWhy = at, "session"
		}
		offer(w.sessions, res.Session)
	}
	w.emit(Event{Kind: EventSync, Why: why, Result: res})
	return true, nil
}

// renewal returns when to renew a session the box said expires at
// expires: renewMargin before, or a fifth of its life when that is
// shorter. ok is false when the box gave no expiry, or when that would
// be less than retryMin from now (a short life by our clock: the box's
// clock is behind ours, and its refusal of the session will tell when to
// renew it).
func renewal(now, expires time.Time) (at time.Time, ok bool) {
	if expires.IsZero() {
		return time.Time{}, false
	}
	life := expires.Sub(now)
	wait := life - min(life/5, renewMargin)
	if wait < retryMin {
		return time.Time{}, false
	}
	return now.Add(wait), true
}

// offer hands session to the long poll in place of any it has not taken.
// Only the card goroutine sends on sessions, so the send never blocks.
func offer(sessions chan string, session string) {
	select {
	case <-sessions:
	default:
	}
	sessions <- session
}

// longPoll asks box for tickets due to the card, with the newest session
// from sessions, until ctx ends. It reports each positive answer on due
// and then waits for the session of the sync that follows before asking
// again. It reports a session the box refuses (expired) on refused and
// waits for the next one; when the box refuses sessions one after the
// other, it waits before each report, from retryMin growing to retryMax,
// so that Watch does not sync in a loop for sessions the box will not
// take.
func longPoll(ctx context.Context, box *apiclient.Client, serial ticketfmt.Serial, wait time.Duration,
	sessions <-chan string, due chan<- int, refused chan<- string) {
	var session string
	backoff := retryMin // after an error of the box
	var refusedWait time.Duration
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
		n, err := box.WithToken(session).Events(ctx, serial, wait)
		var ae *apiclient.Error
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
			if !sleep(ctx, refusedWait) {
				return
			}
			refusedWait = min(max(2*refusedWait, retryMin), retryMax)
			select {
			case refused <- session:
			case <-ctx.Done():
				return
			}
			session = "" // wait for the session of Watch's sync
			continue
		case errors.Is(err, apiclient.ErrNoContent):
			backoff, refusedWait = retryMin, 0
			continue
		case err != nil:
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff, refusedWait = retryMin, 0
		// A session offered before the due sync is not the sign that it
		// ran: drop it, and wait for the sync's.
		select {
		case <-sessions:
		default:
		}
		select {
		case due <- n:
		case <-ctx.Done():
			return
		}
		select {
		case <-ctx.Done():
			return
		case session = <-sessions:
		}
	}
}

// sleep waits for d, or less if ctx ends first; it reports whether ctx
// is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
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
