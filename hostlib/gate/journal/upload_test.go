package journal_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/ticketfmt"
)

// env is a server on SQLite in a temporary data dir.
type env struct {
	keys     *issuer.Keys
	url      string
	journals atomic.Int32 // journal uploads served
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := issuer.Open(ctx, dir, "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = keys.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(dir, "simtix.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	srv, err := server.New(server.Config{Store: st, Keys: keys, MaxWait: time.Second, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	e := &env{keys: keys}
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/gate/journal" {
			e.journals.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

func (e *env) client(t *testing.T, token string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(e.url, token, nil)
	require.NoError(t, err)
	return c
}

func TestMaxUploadIsTheServersLimit(t *testing.T) {
	assert.Equal(t, server.MaxJournal, journal.MaxUpload)
}

func TestRecordAPI(t *testing.T) {
	r := rec(7)
	r.Gate = [4]byte{0x47, 0x41, 0x54, 0xE1}
	r.Time = ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 3, Day: 9}, Hour: 8, Minute: 5, Second: 0}
	a := r.API()
	assert.Equal(t, r.TicketID, a.TicketID)
	assert.Equal(t, r.Serial, a.Serial)
	assert.Equal(t, "474154e1", a.GateID)
	assert.Equal(t, "2026-03-09T08:05:00", a.Time)
	assert.Equal(t, hex.EncodeToString(r.Nonce[:]), a.Nonce)
	assert.Equal(t, hex.EncodeToString(r.Receipt), a.Receipt)
	assert.Len(t, a.Receipt, 2*journal.ReceiptSize)
}

// TestUploadRealCheck journals a real CHECK of an emulated card that the
// server certified, so that its receipt verifies on the server.
func TestUploadRealCheck(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)

	// A card, a ticket ordered for it, and a sync that registers the card
	// (its key) and stores the ticket.
	serial, err := ticketfmt.ParseSerial("89860012345678901234")
	require.NoError(t, err)
	ram, err := emulator.Personalise(applet.Personalisation{Serial: serial, Master: e.keys.Master()})
	require.NoError(t, err)
	card, err := emulator.New(ram, emulator.Options{})
	require.NoError(t, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := card.PowerOn(ctx, i)
		require.NoError(t, err)
	}
	ts, err := corpus.Tickets()
	require.NoError(t, err)
	tk := ts[0]
	order, err := e.client(t, e.keys.OperatorToken()).Order(ctx, api.OrderRequest{Carrier: serial.String(), IdempotencyKey: "journal-1",
		Tickets: []api.OrderTicket{{Type: tk.Type, Seller: tk.Seller, Date: tk.Date, Time: tk.Time, Price: tk.Price, Seat: tk.Seat}}})
	require.NoError(t, err)
	require.Len(t, order.Tickets, 1)
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: e.client(t, "")}
	res, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Status.Stored)

	// The gate's CHECK, journaled.
	gate := hostlib.NewApplet(card.Port(applet.Contactless), hostlib.ClientOptions{})
	_, err = gate.Select(ctx)
	require.NoError(t, err)
	found, err := gate.Find(ctx, cardproto.Query{Date: tk.Date})
	require.NoError(t, err)
	require.Equal(t, order.Tickets[0].ID, found.Ticket.ID)
	check := cardproto.CheckRecord{Gate: [4]byte{'G', 'A', 'T', '1'}, Time: ticketfmt.DateTime{Date: tk.Date, Hour: tk.Time.Hour, Minute: tk.Time.Minute}}
	nonce := [16]byte{1, 2, 3}
	receipt, err := gate.Check(ctx, found.Ticket.ID, check, nonce)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "gate.journal")
	j := open(t, path)
	good := journal.Record{TicketID: found.Ticket.ID, Serial: serial, Gate: check.Gate, Time: check.Time, Nonce: nonce, Receipt: receipt}
	require.NoError(t, j.Append(good))
	// A record of a ticket the server never issued.
	forged := good
	forged.TicketID[9] ^= 1
	require.NoError(t, j.Append(forged))

	gc := e.client(t, e.keys.GateToken())
	ans, err := journal.Upload(ctx, j, gc)
	require.NoError(t, err)
	assert.Equal(t, 1, ans.Accepted)
	assert.Zero(t, ans.Duplicates)
	require.Len(t, ans.Rejected, 1)
	assert.Contains(t, ans.Rejected[0], "unknown")
	assert.Empty(t, ans.CheckedTwice)
	assert.Empty(t, j.Pending(), "everything the server answered is marked")
	deny, err := gc.Deny(ctx)
	require.NoError(t, err)
	assert.Contains(t, deny, found.Ticket.ID)

	// Nothing pending: no request.
	before := e.journals.Load()
	ans, err = journal.Upload(ctx, j, gc)
	require.NoError(t, err)
	assert.Equal(t, api.JournalAnswer{}, ans)
	assert.Equal(t, before, e.journals.Load())

	// The same record sent again (a mark lost in a crash) is harmless.
	j2path := filepath.Join(t.TempDir(), "again.journal")
	j2 := open(t, j2path)
	require.NoError(t, j2.Append(good))
	ans, err = journal.Upload(ctx, j2, gc)
	require.NoError(t, err)
	assert.Equal(t, api.JournalAnswer{Duplicates: 1}, ans)

	// A receipt that does not verify with the card's key is rejected.
	j3 := open(t, filepath.Join(t.TempDir(), "bad.journal"))
	bad := good
	bad.Receipt = append([]byte(nil), receipt...)
	bad.Receipt[10] ^= 1
	require.NoError(t, j3.Append(bad))
	ans, err = journal.Upload(ctx, j3, gc)
	require.NoError(t, err)
	assert.Zero(t, ans.Accepted)
	require.Len(t, ans.Rejected, 1)
	assert.Contains(t, ans.Rejected[0], "receipt")
}

func TestUploadBatchesAndFailures(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "gate.journal")
	j := open(t, path)
	n := journal.MaxUpload + 3
	appendAll(t, j, recs(0, n))

	// The wrong token: an error, nothing marked.
	_, err := journal.Upload(ctx, j, e.client(t, e.keys.OperatorToken()))
	var ae *apiclient.Error
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusUnauthorized, ae.Status)
	assert.Len(t, j.Pending(), n)

	// The server unreachable: the same.
	down, err := apiclient.New("http://127.0.0.1:1", e.keys.GateToken(), nil)
	require.NoError(t, err)
	_, err = journal.Upload(ctx, j, down)
	require.Error(t, err)
	assert.Len(t, j.Pending(), n)

	// These tickets are unknown to the server: it rejects every one, in
	// two requests, and they are all marked (sending them again would
	// change nothing).
	before := e.journals.Load()
	ans, err := journal.Upload(ctx, j, e.client(t, e.keys.GateToken()))
	require.NoError(t, err)
	assert.Equal(t, int32(2), e.journals.Load()-before)
	assert.Zero(t, ans.Accepted)
	assert.Len(t, ans.Rejected, n)
	assert.Empty(t, j.Pending())
	require.NoError(t, j.Close())
	assert.Empty(t, open(t, path).Pending(), "the marks are on disk")
}

func TestUploadCancelled(t *testing.T) {
	e := newEnv(t)
	j := open(t, filepath.Join(t.TempDir(), "j"))
	appendAll(t, j, recs(0, 2))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := journal.Upload(ctx, j, e.client(t, e.keys.GateToken()))
	require.ErrorIs(t, err, context.Canceled)
	assert.Len(t, j.Pending(), 2)
}

func TestUploadWhileAppending(t *testing.T) {
	// Uploads running at once with appends and with each other: every
	// record reaches the server, none is marked without being sent.
	ctx := context.Background()
	e := newEnv(t)
	j := open(t, filepath.Join(t.TempDir(), "j"))
	gc := e.client(t, e.keys.GateToken())
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := map[string]bool{} // the server rejects each record, naming its ticket
	tally := func(ans api.JournalAnswer) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range ans.Rejected {
			sent[r] = true
		}
	}
	for w := range 4 {
		wg.Go(func() {
			for n := w * 25; n < (w+1)*25; n++ {
				assert.NoError(t, j.Append(rec(n)))
				assert.True(t, j.Has(rec(n).TicketID))
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			for range 5 {
				ans, err := journal.Upload(ctx, j, gc)
				assert.NoError(t, err)
				tally(ans)
				_ = j.Records()
			}
		})
	}
	wg.Wait()
	ans, err := journal.Upload(ctx, j, gc)
	require.NoError(t, err)
	tally(ans)
	assert.Empty(t, j.Pending())
	assert.Len(t, j.Records(), 100)
	for n := range 100 {
		assert.True(t, sent["ticket "+rec(n).TicketID.String()+": unknown"], "record %d was never sent", n)
	}
}
