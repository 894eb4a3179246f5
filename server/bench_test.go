package server_test

// The server's benchmarks (docs/benchmarks.md, "The server"): orders and
// syncs per second on SQLite and PostgreSQL, each against a baseline of
// bare store work timed in the same run, and one card's sync with 0, 10
// thousand and 1 million other cards' tickets in the database.
//
// Every request goes through the real handler behind an httptest server
// (HTTP/1.1 over loopback, kept-alive connections) and apiclient, as an
// operator's program or a handset would send it.

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/postgres"
	"github.com/simtix/simtix/store/postgres/pgtest"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/store/storebench"
	"github.com/simtix/simtix/ticketfmt"
)

// benchOpener returns a new, empty store for a benchmark (closed when it
// ends) and a loader that adds n other cards' tickets to it
// (storebench.Ticket 0 … n-1).
type benchOpener func(b *testing.B) (st store.Store, load func(n int) error)

// forEachBackend runs fn as a sub-benchmark on SQLite (a file in a
// temporary directory, as the server opens it: WAL, synchronous=FULL) and
// on PostgreSQL (the project's test cluster through pgtest, started for
// the sub-benchmark unless it runs; never skipped: a cluster that cannot
// start fails the benchmark).
func forEachBackend(b *testing.B, fn func(b *testing.B, open benchOpener)) {
	ctx := context.Background()
	b.Run("sqlite", func(b *testing.B) {
		fn(b, func(b *testing.B) (store.Store, func(int) error) {
			path := filepath.Join(b.TempDir(), "simtix.db")
			st, err := sqlite.Open(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			return st, func(n int) error { return storebench.LoadSQLite(ctx, path, n) }
		})
	})
	b.Run("postgres", func(b *testing.B) {
		cluster, err := pgtest.Start(ctx)
		if err != nil {
			b.Fatalf("PostgreSQL for the benchmark: %v", err)
		}
		b.Cleanup(func() {
			if err := cluster.Stop(); err != nil {
				b.Error(err)
			}
		})
		fn(b, func(b *testing.B) (store.Store, func(int) error) {
			url := cluster.Schema(b)
			st, err := postgres.Open(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			return st, func(n int) error { return storebench.LoadPostgres(ctx, url, n) }
		})
	})
}

// benchServer is a server on a store, behind an httptest server.
type benchServer struct {
	keys *issuer.Keys
	st   store.Store
	url  string
	// op is an operator's client.
	op *apiclient.Client
}

// newBenchServer starts a server on st with new issuer keys (a key file
// in a temporary data directory).
func newBenchServer(b *testing.B, st store.Store) *benchServer {
	keys, err := issuer.Open(context.Background(), b.TempDir(), "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = keys.Close() })
	e := &benchServer{keys: keys, st: st}
	e.url = e.serve(b, st)
	if e.op, err = apiclient.New(e.url, keys.OperatorToken(), nil); err != nil {
		b.Fatal(err)
	}
	return e
}

// serve starts another server with e's keys on st and returns its URL.
func (e *benchServer) serve(b *testing.B, st store.Store) string {
	srv, err := server.New(server.Config{Store: st, Keys: e.keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	return hs.URL
}

// benchTickets returns the corpus as order lines.
func benchTickets(b *testing.B) []api.OrderTicket {
	ts, err := corpus.Tickets()
	if err != nil {
		b.Fatal(err)
	}
	out := make([]api.OrderTicket, len(ts))
	for i, t := range ts {
		out[i] = api.OrderTicket{Type: t.Type, Seller: t.Seller, Date: t.Date, Time: t.Time, Price: t.Price,
			Seat: t.Seat, Instructions: t.Instructions}
	}
	return out
}

// benchSerial returns serial n of a family of serials (one family per use,
// apart from storebench's other cards).
func benchSerial(family byte, n int) ticketfmt.Serial {
	return ticketfmt.Serial{0x89, 0x86, family, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// BenchmarkOrders measures POST /v1/orders with the operator token, one
// corpus ticket per order, each order for a card the server has not seen
// (so the ticket goes to the box and no card's ticket list grows with the
// benchmark). The server's work is its transaction (idempotency key,
// carrier, card lock and ticket list, the insert, the answer kept under
// the key) and the ticket's ECDSA signature, plus HTTP and JSON.
//
// The baseline, interleaved with the orders in the same run and database,
// is the bare insert of the same ticket row (a signed corpus ticket of the
// same size, a fresh random ID, another new carrier) through the store:
// Update with one InsertTickets. That is the least any order must write;
// x-insert is how many times that an order costs.
func BenchmarkOrders(b *testing.B) {
	forEachBackend(b, func(b *testing.B, open benchOpener) {
		ctx := context.Background()
		st, _ := open(b)
		e := newBenchServer(b, st)
		lines := benchTickets(b)
		// The baseline's rows: the corpus signed by the server's key, as
		// an order makes them.
		rows := make([]*box.Ticket, len(lines))
		for i, l := range lines {
			t := ticketfmt.Ticket{Type: l.Type, Seller: l.Seller, Date: l.Date, Time: l.Time, Price: l.Price,
				Seat: l.Seat, Instructions: l.Instructions, Carrier: benchSerial(0x1A, i)}
			if err := t.Sign(e.keys.Signer()); err != nil {
				b.Fatal(err)
			}
			raw, err := t.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			rows[i] = &box.Ticket{Raw: raw, Date: t.Date, Time: t.Time, State: box.InBox}
		}
		order := func(i int) error {
			ans, err := e.op.Order(ctx, api.OrderRequest{Carrier: benchSerial(0x0D, i).String(),
				IdempotencyKey: fmt.Sprintf("bench-%d", i), Tickets: lines[i%len(lines):][:1]})
			if err == nil && (len(ans.Tickets) != 1 || ans.Replayed) {
				err = fmt.Errorf("order %d: answered %+v", i, ans)
			}
			return err
		}
		insert := func(i int) error {
			t := *rows[i%len(rows)]
			t.Carrier = benchSerial(0x1A, i)
			if _, err := rand.Read(t.ID[:]); err != nil {
				return err
			}
			return st.Update(ctx, func(tx store.Tx) error { return tx.InsertTickets(ctx, []*box.Ticket{&t}) })
		}
		var tOrder, tInsert time.Duration
		i := 0
		for b.Loop() {
			// Alternate which goes first, so that neither always finds
			// the other's write-ahead log to checkpoint.
			for j := range 2 {
				t0 := time.Now()
				if (i+j)%2 == 0 {
					if err := order(i); err != nil {
						b.Fatal(err)
					}
					tOrder += time.Since(t0)
				} else {
					if err := insert(i); err != nil {
						b.Fatal(err)
					}
					tInsert += time.Since(t0)
				}
			}
			i++
		}
		n := float64(i)
		b.ReportMetric(float64(tOrder.Nanoseconds())/n, "order-ns")
		b.ReportMetric(float64(tInsert.Nanoseconds())/n, "insert-ns")
		b.ReportMetric(n/tOrder.Seconds(), "orders/s")
		b.ReportMetric(float64(tOrder)/float64(tInsert), "x-insert")
	})
}

// benchCard is an emulated card (in-process, on its contact interface)
// that the server has registered and certified, full, with one more of its
// tickets waiting in the box. Each of its syncs exchanges the waiting
// ticket for one on the card (the holder's exchange, network.md): a plan
// of two steps, DELETE and STORE, four tickets moved in the database, and
// afterwards the same situation with the two tickets swapped.
type benchCard struct {
	serial     ticketfmt.Serial
	h          *handset.Handset
	give, take ticketfmt.ID
}

// newBenchCard makes card n: personalised with the server's master
// secret, registered by a first sync, then given corpus tickets one order
// at a time, soonest use first, until one goes to the box (so that the
// next sync stores all the others), and synced again.
func newBenchCard(b *testing.B, e *benchServer, n int) *benchCard {
	ctx := context.Background()
	serial := benchSerial(0xC0, n)
	ram, err := emulator.Personalise(applet.Personalisation{Serial: serial, Master: e.keys.Master()})
	if err != nil {
		b.Fatal(err)
	}
	card, err := emulator.New(ram, emulator.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := card.PowerOn(ctx, applet.Contact); err != nil {
		b.Fatal(err)
	}
	boxc, err := apiclient.New(e.url, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchCard{serial: serial, h: &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: boxc}}
	if _, err := c.h.Sync(ctx, nil); err != nil {
		b.Fatal(err)
	}
	lines := benchTickets(b)
	slices.SortStableFunc(lines, func(x, y api.OrderTicket) int {
		return cmp.Or(x.Date.Compare(y.Date), x.Time.Compare(y.Time))
	})
	for i := 0; ; i++ {
		ans, err := e.op.Order(ctx, api.OrderRequest{Carrier: serial.String(), IdempotencyKey: fmt.Sprintf("card-%v-%d", serial, i),
			Tickets: lines[i%len(lines):][:1]})
		if err != nil {
			b.Fatal(err)
		}
		if ans.Tickets[0].Route == "box" {
			break
		}
	}
	if _, err := c.h.Sync(ctx, nil); err != nil {
		b.Fatal(err)
	}
	// Give the largest ticket on the card: then the waiting one fits in
	// its place, and it fits back next time.
	var stored, waiting []*box.Ticket
	var overhead, free int
	err = e.st.View(ctx, func(tx store.Tx) error {
		sc, err := tx.Card(ctx, serial)
		if err != nil {
			return err
		}
		overhead, free = sc.Status.Overhead, sc.Status.AvailableBytes()
		ts, err := tx.TicketsOf(ctx, serial)
		for _, t := range ts {
			switch t.State {
			case box.OnCard:
				stored = append(stored, t)
			case box.InBox:
				waiting = append(waiting, t)
			}
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(waiting) != 1 || len(stored) == 0 {
		b.Fatalf("card %v: %d tickets on the card and %d in the box, want some and one", serial, len(stored), len(waiting))
	}
	give := slices.MaxFunc(stored, func(x, y *box.Ticket) int { return len(x.Raw) - len(y.Raw) })
	if waiting[0].Size(overhead) > free+give.Size(overhead) {
		b.Fatalf("card %v: the waiting ticket (%d bytes) does not fit in place of the largest (%d)", serial, len(waiting[0].Raw), len(give.Raw))
	}
	c.give, c.take = give.ID, waiting[0].ID
	return c
}

// sync runs one full handset sync with the exchange: SELECT, a challenge,
// BEGIN SYNC and LIST, the box's sync and plan, DELETE and STORE on the
// card, and the closing round (a challenge, BEGIN SYNC, LIST, the box's
// final sync), then STATUS.
func (c *benchCard) sync(ctx context.Context) error {
	res, err := c.h.Sync(ctx, &handset.Exchange{Give: c.give, Take: c.take})
	if err != nil {
		return err
	}
	if res.Planned != 2 || res.Steps != 2 || res.Refused != 0 {
		return fmt.Errorf("card %v: sync planned %d steps, the card applied %d (refused: %v), want 2 and 2", c.serial, res.Planned, res.Steps, res.Refused)
	}
	c.give, c.take = c.take, c.give
	return nil
}

// storeSync makes, on card c's rows in st, the store calls of one of c's
// exchange syncs, with the same arguments, and nothing else: for each
// round, a transaction keeping a challenge, then one taking it, locking
// and reading the card, reading its tickets, moving two of them and
// writing the card. No HTTP, JSON, MAC, card or box logic. The card's own
// syncs then no longer match its rows: a card that runs storeSync is not
// synced again.
func (c *benchCard) storeSync(ctx context.Context, st store.Store) error {
	for _, final := range []bool{false, true} {
		var ch [16]byte
		if _, err := rand.Read(ch[:]); err != nil {
			return err
		}
		now := time.Now()
		err := st.Update(ctx, func(tx store.Tx) error { return tx.PutChallenge(ctx, c.serial, ch[:], now.Add(2*time.Minute)) })
		if err != nil {
			return err
		}
		err = st.Update(ctx, func(tx store.Tx) error {
			if err := tx.TakeChallenge(ctx, c.serial, ch[:], now); err != nil {
				return err
			}
			card, err := tx.LockCard(ctx, c.serial)
			if err != nil {
				return err
			}
			ts, err := tx.TicketsOf(ctx, c.serial)
			if err != nil {
				return err
			}
			var give, take box.Ticket
			for _, t := range ts {
				switch t.ID {
				case c.give:
					give = *t
				case c.take:
					take = *t
				}
			}
			card.Epoch++
			card.Status.Epoch = card.Epoch
			c0 := card.Status.Counter
			gFrom, tFrom := box.OnCard, box.InBox
			if !final {
				give.State, give.Epoch, give.Counter = box.Returning, card.Epoch, c0
				take.State, take.Epoch, take.Counter = box.Delivering, card.Epoch, c0+1
				card.Plan = box.Plan{Epoch: card.Epoch, C0: c0, Items: []box.Item{
					{Op: box.OpDelete, Ticket: give.ID, Expected: cardproto.StateUnchecked}, {Op: box.OpStore, Ticket: take.ID}}}
			} else {
				gFrom, tFrom = box.Returning, box.Delivering
				give.State, take.State = box.InBox, box.OnCard
				give.Epoch, give.Counter, take.Epoch, take.Counter = 0, 0, 0, 0
				card.Status.Counter += 2
				card.Plan = box.Plan{Epoch: card.Epoch, C0: card.Status.Counter}
			}
			if err := tx.MoveTicket(ctx, &give, gFrom); err != nil {
				return err
			}
			if err := tx.MoveTicket(ctx, &take, tFrom); err != nil {
				return err
			}
			return tx.PutCard(ctx, card)
		})
		if err != nil {
			return err
		}
	}
	c.give, c.take = c.take, c.give
	return nil
}

// checkStoreSync fails b unless storeSync makes exactly the store calls a
// real sync of the card makes (through a second server on a counting
// wrapper of the same store). It runs one sync of synced and one storeSync
// of raw.
func checkStoreSync(b *testing.B, e *benchServer, synced, raw *benchCard) {
	ctx := context.Background()
	cs := &countingStore{Store: e.st}
	boxc, err := apiclient.New(e.serve(b, cs), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	counted := *synced
	counted.h = &handset.Handset{Card: synced.h.Card, Box: boxc}
	if err := counted.sync(ctx); err != nil {
		b.Fatal(err)
	}
	synced.give, synced.take = counted.give, counted.take
	want := cs.take()
	if err := raw.storeSync(ctx, cs); err != nil {
		b.Fatal(err)
	}
	if got := cs.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		b.Fatalf("the baseline makes other store calls than a sync:\n sync:     %v\n baseline: %v", want, got)
	}
	b.Logf("store calls of one sync: %v", want)
}

// BenchmarkSync measures a full handset sync (benchCard.sync: an exchange,
// two plan steps, with the closing round) against the same store calls
// without anything else (benchCard.storeSync, on a second card set up the
// same way), interleaved in the same run and database. x-store is how
// many times the store work a sync costs; checkStoreSync first proves the
// store calls are the same.
func BenchmarkSync(b *testing.B) {
	forEachBackend(b, func(b *testing.B, open benchOpener) {
		st, _ := open(b)
		e := newBenchServer(b, st)
		synced, raw := newBenchCard(b, e, 1), newBenchCard(b, e, 2)
		checkStoreSync(b, e, synced, raw)
		var s syncTimes
		for b.Loop() {
			s.run(b, st, synced, raw)
		}
		b.ReportMetric(mean(s.sync), "sync-ns")
		b.ReportMetric(mean(s.store), "store-ns")
		b.ReportMetric(1e9/mean(s.sync), "syncs/s")
		b.ReportMetric(mean(s.sync)/mean(s.store), "x-store")
	})
}

// syncTimes keeps the times of syncs and of their store calls alone.
type syncTimes struct {
	n           int
	sync, store []time.Duration
}

// run times one sync of synced and one storeSync of raw, alternating which
// goes first.
func (s *syncTimes) run(b *testing.B, st store.Store, synced, raw *benchCard) {
	ctx := context.Background()
	for j := range 2 {
		t0 := time.Now()
		if (s.n+j)%2 == 0 {
			if err := synced.sync(ctx); err != nil {
				b.Fatal(err)
			}
			s.sync = append(s.sync, time.Since(t0))
		} else {
			if err := raw.storeSync(ctx, st); err != nil {
				b.Fatal(err)
			}
			s.store = append(s.store, time.Since(t0))
		}
	}
	s.n++
}

// mean returns the mean of ds in nanoseconds.
func mean(ds []time.Duration) float64 {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return float64(sum.Nanoseconds()) / float64(len(ds))
}

// median returns the median of ds in nanoseconds.
func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return float64(s[len(s)/2].Nanoseconds())
	}
	return float64((s[len(s)/2-1] + s[len(s)/2]).Nanoseconds()) / 2
}

// BenchmarkSyncScale measures one card's sync, and the same store calls
// alone, in three databases side by side: one with no other tickets, one
// with 10 thousand and one with 1 million other cards' tickets
// (storebench: 20 a card, loaded before the benchmark's cards). Each
// iteration syncs once in each. The times are medians, which a disk's
// occasional slow fsync does not move; x-1M/0 and x-10k/0 are their ratios
// (xstore- the same for the store calls alone): 1 when a sync does not
// depend on how many tickets other cards hold.
func BenchmarkSyncScale(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{{"0", 0}, {"10k", 10_000}, {"1M", 1_000_000}}
	forEachBackend(b, func(b *testing.B, open benchOpener) {
		type db struct {
			st          store.Store
			synced, raw *benchCard
			times       syncTimes
		}
		dbs := make([]*db, len(sizes))
		for i, size := range sizes {
			st, load := open(b)
			t0 := time.Now()
			if err := load(size.n); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s other tickets loaded in %v", size.name, time.Since(t0).Round(time.Millisecond))
			e := newBenchServer(b, st)
			d := &db{st: st, synced: newBenchCard(b, e, 1), raw: newBenchCard(b, e, 2)}
			checkStoreSync(b, e, d.synced, d.raw)
			dbs[i] = d
		}
		for k := 0; b.Loop(); k++ {
			// Start from another database each time: none is always first.
			for j := range dbs {
				d := dbs[(k+j)%len(dbs)]
				d.times.run(b, d.st, d.synced, d.raw)
			}
		}
		for i, size := range sizes {
			b.ReportMetric(median(dbs[i].times.sync), size.name+"-sync-ns")
			b.ReportMetric(median(dbs[i].times.store), size.name+"-store-ns")
		}
		zero := dbs[0].times
		for i, size := range sizes[1:] {
			d := dbs[i+1].times
			b.ReportMetric(median(d.sync)/median(zero.sync), "x-"+size.name+"/0")
			b.ReportMetric(median(d.store)/median(zero.store), "xstore-"+size.name+"/0")
		}
	})
}

// countingStore counts the store calls made through it, by method.
type countingStore struct {
	store.Store
	mu sync.Mutex
	n  map[string]int
}

func (s *countingStore) count(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[method]++
}

// take returns the counts so far and starts again from none.
func (s *countingStore) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	s.n = nil
	return n
}

func (s *countingStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	s.count("Update")
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(&countingTx{Tx: tx, s: s}) })
}

func (s *countingStore) View(ctx context.Context, fn func(tx store.Tx) error) error {
	s.count("View")
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(&countingTx{Tx: tx, s: s}) })
}

// countingTx counts every method of store.Tx.
type countingTx struct {
	store.Tx
	s *countingStore
}

func (t *countingTx) LockCard(ctx context.Context, serial ticketfmt.Serial) (*store.Card, error) {
	t.s.count("LockCard")
	return t.Tx.LockCard(ctx, serial)
}

func (t *countingTx) Card(ctx context.Context, serial ticketfmt.Serial) (*store.Card, error) {
	t.s.count("Card")
	return t.Tx.Card(ctx, serial)
}

func (t *countingTx) PutCard(ctx context.Context, c *store.Card) error {
	t.s.count("PutCard")
	return t.Tx.PutCard(ctx, c)
}

func (t *countingTx) SetMSISDN(ctx context.Context, serial ticketfmt.Serial, msisdn string) error {
	t.s.count("SetMSISDN")
	return t.Tx.SetMSISDN(ctx, serial, msisdn)
}

func (t *countingTx) SerialOf(ctx context.Context, msisdn string) (ticketfmt.Serial, error) {
	t.s.count("SerialOf")
	return t.Tx.SerialOf(ctx, msisdn)
}

func (t *countingTx) InsertTickets(ctx context.Context, ts []*box.Ticket) error {
	t.s.count("InsertTickets")
	return t.Tx.InsertTickets(ctx, ts)
}

func (t *countingTx) Ticket(ctx context.Context, id ticketfmt.ID) (*box.Ticket, error) {
	t.s.count("Ticket")
	return t.Tx.Ticket(ctx, id)
}

func (t *countingTx) TicketsOf(ctx context.Context, serial ticketfmt.Serial) ([]*box.Ticket, error) {
	t.s.count("TicketsOf")
	return t.Tx.TicketsOf(ctx, serial)
}

func (t *countingTx) MoveTicket(ctx context.Context, tk *box.Ticket, from box.State) error {
	t.s.count("MoveTicket")
	return t.Tx.MoveTicket(ctx, tk, from)
}

func (t *countingTx) CountTickets(ctx context.Context) (map[box.State]int, error) {
	t.s.count("CountTickets")
	return t.Tx.CountTickets(ctx)
}

func (t *countingTx) PutChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, expires time.Time) error {
	t.s.count("PutChallenge")
	return t.Tx.PutChallenge(ctx, serial, challenge, expires)
}

func (t *countingTx) TakeChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, now time.Time) error {
	t.s.count("TakeChallenge")
	return t.Tx.TakeChallenge(ctx, serial, challenge, now)
}

func (t *countingTx) PutOrder(ctx context.Context, key string, answer []byte) error {
	t.s.count("PutOrder")
	return t.Tx.PutOrder(ctx, key, answer)
}

func (t *countingTx) Order(ctx context.Context, key string) ([]byte, error) {
	t.s.count("Order")
	return t.Tx.Order(ctx, key)
}

func (t *countingTx) AddCheck(ctx context.Context, c store.Check) (bool, error) {
	t.s.count("AddCheck")
	return t.Tx.AddCheck(ctx, c)
}

func (t *countingTx) ChecksOf(ctx context.Context, id ticketfmt.ID) ([]store.Check, error) {
	t.s.count("ChecksOf")
	return t.Tx.ChecksOf(ctx, id)
}

func (t *countingTx) DenyList(ctx context.Context) ([]ticketfmt.ID, error) {
	t.s.count("DenyList")
	return t.Tx.DenyList(ctx)
}
