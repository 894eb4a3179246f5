package handset

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/ticketfmt"
)

func TestRenewal(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		life time.Duration
		at   time.Duration
		ok   bool
	}{
		{10 * time.Minute, 9 * time.Minute, true}, // a minute before
		{time.Hour, 59 * time.Minute, true},
		{3 * time.Second, 2400 * time.Millisecond, true}, // a fifth of its life before
		{time.Second, 0, false},                          // too short to renew ahead: the refusal will tell
		{-time.Minute, 0, false},
	} {
		at, ok := renewal(now, now.Add(c.life))
		assert.Equal(t, c.ok, ok, "life %v", c.life)
		if c.ok {
			assert.Equal(t, now.Add(c.at), at, "life %v", c.life)
		}
	}
	_, ok := renewal(now, time.Time{})
	assert.False(t, ok, "no expiry given")
}

// TestLongPollBacksOffRefusals: a box that refuses every session (new
// ones included) gets the first refusal reported at once and the next
// ones ever more slowly, not a sync in a loop.
func TestLongPollBacksOffRefusals(t *testing.T) {
	var asked atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, `{"error":"expired"}`, http.StatusUnauthorized)
	}))
	defer hs.Close()
	c, err := apiclient.New(hs.URL, "", nil)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	sessions := make(chan string, 1)
	due := make(chan int, 1)
	refused := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		longPoll(ctx, c, ticketfmt.Serial{}, time.Second, sessions, due, refused)
	}()
	offer(sessions, "s0")
	var got []string
	deadline := time.After(3500 * time.Millisecond) // refusals at about 0, 1 and 3 s
	for waiting := true; waiting; {
		select {
		case s := <-refused:
			got = append(got, s)
			offer(sessions, fmt.Sprintf("s%d", len(got))) // as Watch: a new session for each refusal
		case <-deadline:
			waiting = false
		}
	}
	cancel()
	<-done
	require.NotEmpty(t, got)
	assert.Equal(t, "s0", got[0])
	assert.LessOrEqual(t, len(got), 5, "refusals one after the other are reported ever more slowly")
	assert.LessOrEqual(t, int(asked.Load()), 6)
}
