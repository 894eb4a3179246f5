package server

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// Backoff between attempts to listen for other server processes' orders.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 10 * time.Second
)

// broker wakes watching handsets (the events long poll) when tickets become
// due to their card: at once for the orders this process takes (notify),
// and, when the store is shared by several processes (store.Notifier), for
// the orders the others take, which a listener goroutine relays from the
// store.
//
// A wake-up only says "look again": a waiter subscribes (wait) before it
// looks at the database, so that no order committed after its look goes
// unnoticed, and looks again when woken. Whenever the listener starts
// listening (again), it wakes every waiter, since what was announced
// while it was not listening is lost.
type broker struct {
	log *slog.Logger

	mu      sync.Mutex
	waiters map[ticketfmt.Serial][]chan struct{}

	stopOnce sync.Once
	stop     context.CancelFunc // ends the listener; nil without one
	done     chan struct{}      // closed when the listener has returned
}

func newBroker(log *slog.Logger) *broker {
	return &broker{log: log, waiters: map[ticketfmt.Serial][]chan struct{}{}}
}

// wait returns a channel closed at the next notify for serial (or the next
// wakeAll), and a function that unsubscribes it.
func (b *broker) wait(serial ticketfmt.Serial) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	b.mu.Lock()
	b.waiters[serial] = append(b.waiters[serial], ch)
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		ws := b.waiters[serial]
		for i, w := range ws {
			if w == ch {
				b.waiters[serial] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(b.waiters[serial]) == 0 {
			delete(b.waiters, serial)
		}
	}
}

// notify wakes serial's waiters.
func (b *broker) notify(serial ticketfmt.Serial) {
	b.mu.Lock()
	ws := b.waiters[serial]
	delete(b.waiters, serial)
	b.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// wakeAll wakes every waiter.
func (b *broker) wakeAll() {
	b.mu.Lock()
	all := b.waiters
	b.waiters = map[ticketfmt.Serial][]chan struct{}{}
	b.mu.Unlock()
	for _, ws := range all {
		for _, ch := range ws {
			close(ch)
		}
	}
}

// start runs the listener, which relays n's notifications to the waiters
// until close.
func (b *broker) start(n store.Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	b.stop, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		b.listen(ctx, n)
	}()
}

// listen calls n.Listen again and again, backing off after a failure,
// until ctx is done or the store is closed.
func (b *broker) listen(ctx context.Context, n store.Notifier) {
	backoff := listenBackoffMin
	failed := false
	for {
		listening := false
		err := n.Listen(ctx, func() {
			listening = true
			if failed {
				b.log.Info("listening again for other server processes' orders")
				failed = false
			}
			b.wakeAll()
		}, b.notify)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrClosed):
			// The store closed before the server (Close): at shutdown.
			b.log.Debug("the store is closed: no longer listening for other server processes' orders")
			return
		}
		if listening {
			backoff = listenBackoffMin
		}
		// At random in [backoff/2, backoff], so that the processes that
		// lost the database at once do not come back all at once.
		d := backoff/2 + rand.N(backoff/2+1)
		b.log.Warn("not listening for other server processes' orders: watching handsets hear of them late", "err", err, "retry_in", d)
		failed = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// close stops the listener, if any, and waits for it to return.
func (b *broker) close() {
	b.stopOnce.Do(func() {
		if b.stop != nil {
			b.stop()
			<-b.done
		}
	})
}
