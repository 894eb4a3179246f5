package handset_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/ticketfmt"
)

// serve runs a server of the test's own over the fixture's store and keys,
// with cfg's timing, behind wrap (when not nil), and points the fixture's
// clients (handset and operator) at it.
func (f *fixture) serve(t *testing.T, cfg server.Config, wrap func(http.Handler) http.Handler) {
	cfg.Store, cfg.Keys, cfg.Logger = f.env.Store, f.env.Keys, slog.New(slog.DiscardHandler)
	srv, err := server.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	f.env.URL = hs.URL
}

// delivered waits until the box has ticket id on the card, failing on an
// error of Watch, then checks that every ticket is in its one place.
func delivered(t *testing.T, f *fixture, events <-chan handset.Event, id ticketfmt.ID, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for f.view(t)[id] != box.OnCard {
		select {
		case e := <-events:
			require.NotEqual(t, handset.EventError, e.Kind, "%v", e.Err)
		case <-poll.C:
		case <-deadline:
			t.Fatalf("ticket %v not on the card within %v: %v", id, within, f.view(t)[id])
		}
	}
	f.placed(t)
}

// TestWatchRenewsItsSessionBeforeItExpires: the box's sessions last 3 s;
// Watch renews its own before it expires, by the expiry the box gave, and
// a ticket ordered after the first session expired reaches the card.
func TestWatchRenewsItsSessionBeforeItExpires(t *testing.T) {
	f := newFixture(t)
	f.serve(t, server.Config{SessionTTL: 3 * time.Second}, nil)
	// The long poll's first request outlasts the first session: a renewal
	// before it ends is Watch's own, not an answer to a refusal.
	events := watch(t, f, handset.WatchOptions{Interval: time.Minute, EventWait: 20 * time.Second})
	first := waitFor(t, events, handset.EventSync, "start", 10*time.Second)
	require.False(t, first.Result.SessionExpires.IsZero(), "the box says when the session expires")
	renewed := waitFor(t, events, handset.EventSync, "session", 10*time.Second)
	assert.NotEqual(t, first.Result.Session, renewed.Result.Session)
	assert.True(t, renewed.Result.SessionExpires.After(first.Result.SessionExpires))

	time.Sleep(time.Until(first.Result.SessionExpires) + 1500*time.Millisecond)
	ans := f.order(t, "after-expiry", systemtest.Tickets(t)[:1])
	require.Equal(t, "card", ans.Tickets[0].Route)
	delivered(t, f, events, ans.Tickets[0].ID, 10*time.Second)
}

// TestWatchOutlivesItsSession: the box's sessions last 3 s and the long
// poll asks again every second; a ticket ordered well after the first
// session expired still reaches the card at once, with no notification of
// the card (STATUS is polled every minute only).
func TestWatchOutlivesItsSession(t *testing.T) {
	f := newFixture(t)
	f.serve(t, server.Config{SessionTTL: 3 * time.Second}, nil)
	events := watch(t, f, handset.WatchOptions{Interval: time.Minute, EventWait: time.Second})
	first := waitFor(t, events, handset.EventSync, "start", 10*time.Second)
	require.False(t, first.Result.SessionExpires.IsZero(), "the box says when the session expires")

	// Long polls have been asked with the first session after it expired.
	time.Sleep(time.Until(first.Result.SessionExpires) + 2*time.Second)
	ans := f.order(t, "after-expiry", systemtest.Tickets(t)[:1])
	require.Equal(t, "card", ans.Tickets[0].Route)
	delivered(t, f, events, ans.Tickets[0].ID, 10*time.Second)
}

// TestWatchRenewsASessionTheBoxRefuses: the box's clock jumps past the
// session's expiry (ours does not, so Watch cannot see it coming); the
// long poll is refused, Watch syncs for a new session, and a ticket
// ordered then reaches the card with no notification of the card.
func TestWatchRenewsASessionTheBoxRefuses(t *testing.T) {
	f := newFixture(t)
	var skew atomic.Int64
	f.serve(t, server.Config{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}, nil)
	events := watch(t, f, handset.WatchOptions{Interval: time.Minute, EventWait: time.Second})
	first := waitFor(t, events, handset.EventSync, "start", 10*time.Second)

	skew.Store(int64(11 * time.Minute)) // the default session lasts 10 min
	renewed := waitFor(t, events, handset.EventSync, "session", 10*time.Second)
	assert.True(t, renewed.Result.SessionExpires.After(first.Result.SessionExpires.Add(10*time.Minute)),
		"a session of the box's new time")

	ans := f.order(t, "after-expiry", systemtest.Tickets(t)[:1])
	require.Equal(t, "card", ans.Tickets[0].Route)
	delivered(t, f, events, ans.Tickets[0].ID, 10*time.Second)
}

// TestWatchStartsWhileTheBoxIsDown: the box answers 503 when Watch
// starts, so the first sync fails; Watch tries again until the box is
// back, wins a session, and then delivers an order at once.
func TestWatchStartsWhileTheBoxIsDown(t *testing.T) {
	f := newFixture(t)
	var up atomic.Bool
	f.serve(t, server.Config{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !up.Load() {
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	events := watch(t, f, handset.WatchOptions{Interval: time.Minute, EventWait: 5 * time.Second})
	select {
	case e := <-events:
		require.Equal(t, handset.EventError, e.Kind)
		assert.Equal(t, "start", e.Why)
	case <-time.After(10 * time.Second):
		t.Fatal("no error from the first sync")
	}
	up.Store(true)
	deadline := time.After(15 * time.Second)
	for retried := false; !retried; {
		select {
		case e := <-events:
			switch e.Kind {
			case handset.EventError:
				assert.Equal(t, "retry", e.Why) // a retry before the box came back
			case handset.EventSync:
				assert.Equal(t, "retry", e.Why)
				retried = true
			}
		case <-deadline:
			t.Fatal("no sync once the box was back")
		}
	}

	ans := f.order(t, "once-up", systemtest.Tickets(t)[:1])
	require.Equal(t, "card", ans.Tickets[0].Route)
	delivered(t, f, events, ans.Tickets[0].ID, 10*time.Second)
}
