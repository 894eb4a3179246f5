package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

// The server's fuzz targets send requests built from the fuzz input
// straight to the server's handler (no network), on SQLite, in a state
// with something to find: a registered, certified card with tickets on it,
// in the box and checked, an MSISDN, and a card known only from an order.
// Every answer must keep these properties (fuzzServer.serve):
//
//   - the server never panics and never answers 5xx: a 5xx must be a real
//     fault of the server, never caused by what a client sent;
//   - every error answer (4xx) is JSON {"error": "..."} with a message;
//   - a refused request changes nothing in the database.
//
// The seeds, valid and near-valid requests, are in testdata/fuzz/<Target>/;
// those that depend on the run's keys (receipts, MACs) are made in the
// code. Each worker process makes its own server, in a data directory on
// tmpfs when there is one, so that commits cost no disk syncs.

// fuzzServer is a server with a store in a known state, for fuzz targets
// and the bad-input tests.
type fuzzServer struct {
	keys    *issuer.Keys
	store   store.Store
	srv     *server.Server
	db      string // the SQLite file
	probe   *sql.Conn
	serial  ticketfmt.Serial // registered, certified, tickets on the card, in the box, checked
	other   ticketfmt.Serial // known from an order only
	msisdn  string           // registered for serial
	session string           // a holder's session for serial
	tickets []ticketfmt.ID   // serial's tickets
	raws    map[ticketfmt.ID][]byte
	checked ticketfmt.ID // one of serial's tickets, checked at a gate
	journal api.JournalRecord
	cardKey []byte // serial's card public key, uncompressed
}

// fuzzDir returns a private temporary directory, on tmpfs if there is one.
func fuzzDir(tb testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "simtix-fuzz-"); err == nil {
			tb.Cleanup(func() { _ = os.RemoveAll(dir) })
			return dir
		}
	}
	return tb.TempDir()
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	ctx := context.Background()
	dir := fuzzDir(tb)
	keys, err := issuer.Open(ctx, dir, "")
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = keys.Close() })
	fs := &fuzzServer{keys: keys, db: filepath.Join(dir, "simtix.db"), msisdn: "+8613800138000", raws: map[ticketfmt.ID][]byte{}}
	st, err := sqlite.Open(ctx, fs.db)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	fs.store = st
	fs.srv, err = server.New(server.Config{Store: st, Keys: keys, MaxWait: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = fs.srv.Close() })

	// The state, made as clients make it, over HTTP.
	hs := httptest.NewServer(fs.srv.Handler())
	defer hs.Close()
	client := func(token string) *apiclient.Client {
		c, err := apiclient.New(hs.URL, token, nil)
		require.NoError(tb, err)
		return c
	}
	op := client(keys.OperatorToken())
	fs.serial = ticketfmt.Serial{0x89, 0x86, 0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34}
	fs.other = ticketfmt.Serial{0x89, 0x86, 0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0x99, 0x99}
	ram, err := emulator.Personalise(applet.Personalisation{Serial: fs.serial, Master: keys.Master(), Capacity: 1024, MaxTickets: 6})
	require.NoError(tb, err)
	card, err := emulator.New(ram, emulator.Options{})
	require.NoError(tb, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := card.PowerOn(ctx, i)
		require.NoError(tb, err)
	}
	for _, o := range []struct {
		serial ticketfmt.Serial
		key    string
		n      int
	}{{fs.serial, "seed-1", 10}, {fs.other, "seed-2", 2}} {
		ans, err := op.Order(ctx, fuzzOrder(tb, o.serial.String(), o.key, o.n))
		require.NoError(tb, err)
		if o.serial == fs.serial {
			for _, t := range ans.Tickets {
				fs.tickets = append(fs.tickets, t.ID)
				fs.raws[t.ID], _ = hex.DecodeString(t.Ticket)
			}
		}
	}
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: client("")}
	res, err := h.Sync(ctx, nil)
	require.NoError(tb, err)
	require.Positive(tb, res.Status.Stored)
	require.Positive(tb, res.Waiting)
	fs.session = res.Session
	require.NoError(tb, op.SetMSISDN(ctx, fs.serial, fs.msisdn))

	gate := hostlib.NewApplet(card.Port(applet.Contactless), hostlib.ClientOptions{})
	fci, err := gate.Select(ctx)
	require.NoError(tb, err)
	cert, err := ticketfmt.UnmarshalCertificate(fci.Certificate)
	require.NoError(tb, err)
	fs.cardKey, err = ticketfmt.EncodePublicKey(cert.PublicKey)
	require.NoError(tb, err)
	_, list, err := hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}).List(ctx)
	require.NoError(tb, err)
	entries, err := cardproto.ParseList(list)
	require.NoError(tb, err)
	fs.checked = entries[0].ID
	check := cardproto.CheckRecord{Gate: [4]byte{'G', 'A', 'T', '1'}, Time: ticketfmt.DateTime{Date: entries[0].Date, Hour: 19}}
	nonce := [16]byte{1, 2, 3}
	receipt, err := gate.Check(ctx, fs.checked, check, nonce)
	require.NoError(tb, err)
	fs.journal = api.JournalRecord{TicketID: fs.checked, Serial: fs.serial, GateID: hex.EncodeToString(check.Gate[:]),
		Time: check.Time.String(), Nonce: hex.EncodeToString(nonce[:]), Receipt: hex.EncodeToString(receipt)}
	ja, err := client(keys.GateToken()).Journal(ctx, []api.JournalRecord{fs.journal})
	require.NoError(tb, err)
	require.Equal(tb, 1, ja.Accepted)

	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: fs.db}).String()+"?mode=ro")
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = db.Close() })
	fs.probe, err = db.Conn(ctx)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = fs.probe.Close() })

	// The digest sees a committed change.
	before := fs.digest(tb)
	_, err = op.Order(ctx, fuzzOrder(tb, fs.other.String(), "seed-3", 1))
	require.NoError(tb, err)
	require.NotEqual(tb, before, fs.digest(tb), "the state digest sees a commit")
	return fs
}

// fuzzOrder is an order of n corpus tickets.
func fuzzOrder(tb testing.TB, carrier, key string, n int) api.OrderRequest {
	ts, err := corpus.Tickets()
	require.NoError(tb, err)
	req := api.OrderRequest{Carrier: carrier, IdempotencyKey: key}
	for _, tk := range ts[:n] {
		req.Tickets = append(req.Tickets, api.OrderTicket{Type: tk.Type, Seller: tk.Seller, Date: tk.Date, Time: tk.Time,
			Price: tk.Price, Seat: tk.Seat, Instructions: tk.Instructions})
	}
	return req
}

// digest is a cheap digest of the database: SQLite's data_version on a
// connection of the test's own (it changes when any other connection
// commits) and the row counts.
func (fs *fuzzServer) digest(tb testing.TB) string {
	ctx := context.Background()
	var version, cards, tickets, challenges, orders, checks int64
	require.NoError(tb, fs.probe.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&version))
	require.NoError(tb, fs.probe.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM cards), (SELECT count(*) FROM tickets),
		(SELECT count(*) FROM challenges), (SELECT count(*) FROM orders), (SELECT count(*) FROM checks)`).
		Scan(&cards, &tickets, &challenges, &orders, &checks))
	return fmt.Sprintf("data_version %d: %d cards, %d tickets, %d challenges, %d orders, %d checks",
		version, cards, tickets, challenges, orders, checks)
}

// dump is the whole database, row by row, for the bad-input tests.
func (fs *fuzzServer) dump(tb testing.TB) string {
	ctx := context.Background()
	rows, err := fs.probe.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	require.NoError(tb, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(tb, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(tb, rows.Err())
	require.NoError(tb, rows.Close())
	var out strings.Builder
	for _, table := range tables {
		rows, err := fs.probe.QueryContext(ctx, `SELECT * FROM "`+table+`" ORDER BY 1`)
		require.NoError(tb, err)
		cols, err := rows.Columns()
		require.NoError(tb, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(tb, rows.Scan(ptrs...))
			fmt.Fprintf(&out, "%s %v\n", table, vals)
		}
		require.NoError(tb, rows.Err())
		require.NoError(tb, rows.Close())
	}
	return out.String()
}

// serve runs a request through the server's handler and checks the
// properties every answer keeps.
func (fs *fuzzServer) serve(t testing.TB, req *http.Request) *httptest.ResponseRecorder {
	before := fs.digest(t)
	rec := httptest.NewRecorder()
	fs.srv.Handler().ServeHTTP(rec, req)
	checkAnswer(t, req.Method+" "+req.URL.String(), rec.Code, rec.Header(), rec.Body.Bytes())
	if rec.Code >= 400 {
		require.Equal(t, before, fs.digest(t), "%s %s answered %d and changed the database", req.Method, req.URL, rec.Code)
	}
	return rec
}

// checkAnswer checks an answer: no 5xx; an error is JSON {"error": "..."}
// with a message.
func checkAnswer(t testing.TB, what string, code int, header http.Header, body []byte) {
	if code >= 500 {
		t.Fatalf("%s answered %d (a server fault caused by input): %s", what, code, body)
	}
	if code < 400 {
		return
	}
	require.True(t, strings.HasPrefix(header.Get("Content-Type"), "application/json"),
		"%s answered %d with content type %q", what, code, header.Get("Content-Type"))
	var ea api.ErrorAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&ea), "%s answered %d: not a JSON error: %q", what, code, body)
	require.NotEmpty(t, strings.TrimSpace(ea.Error), "%s answered %d with an empty message", what, code)
}

// request builds a request for the handler; a target that an HTTP server
// would not take (no request URI) gives nil.
func request(method, target string, body []byte, token, contentType string) *http.Request {
	u, err := url.ParseRequestURI(target)
	if err != nil || !strings.HasPrefix(u.Path, "/") {
		return nil
	}
	req := httptest.NewRequest(http.MethodGet, "/", bytes.NewReader(body))
	req.Method, req.URL, req.RequestURI = method, u, target
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// token picks the credentials a fuzzed request carries: mostly the right
// ones for the endpoint (want), sometimes none, another role's, or junk.
func (fs *fuzzServer) token(auth byte, want string) string {
	switch auth % 8 {
	case 5:
		return ""
	case 6:
		return fs.keys.GateToken() + fs.keys.OperatorToken()[:4]
	case 7:
		return fs.session
	}
	return want
}

// FuzzOrder sends POST /v1/orders with a fuzzed body, Idempotency-Key
// header, content type and credentials.
func FuzzOrder(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte, key, contentType string, auth byte) {
		req := request(http.MethodPost, "/v1/orders", body, fs.token(auth, fs.keys.OperatorToken()), contentType)
		if key != "" {
			req.Header["Idempotency-Key"] = []string{key}
		}
		rec := fs.serve(t, req)
		if rec.Code == http.StatusCreated || rec.Code == http.StatusOK {
			// What the server keeps, every store can keep: PostgreSQL
			// takes no NUL and no invalid UTF-8 in text.
			var ans api.OrderAnswer
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ans))
			require.False(t, strings.ContainsFunc(ans.IdempotencyKey, unicode.IsControl), "key %q accepted", ans.IdempotencyKey)
			if key != "" {
				require.True(t, utf8.ValidString(key), "key %q accepted", key)
			}
		}
	})
}

// FuzzMSISDN sends PUT /v1/cards/{serial}/msisdn with a fuzzed serial,
// body and content type.
func FuzzMSISDN(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, serial string, body []byte, contentType string) {
		fs.serve(t, request(http.MethodPut, "/v1/cards/"+url.PathEscape(serial)+"/msisdn", body, fs.keys.OperatorToken(), contentType))
	})
}

// FuzzChallenge sends POST /v1/cards/{serial}/challenge with a fuzzed
// serial (and a body, which the endpoint ignores).
func FuzzChallenge(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, serial string, body []byte) {
		rec := fs.serve(t, request(http.MethodPost, "/v1/cards/"+url.PathEscape(serial)+"/challenge", body, "", ""))
		if rec.Code == http.StatusCreated {
			var ch api.ChallengeAnswer
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ch))
			c, err := hex.DecodeString(ch.Challenge)
			require.NoError(t, err)
			require.Len(t, c, cardkeys.ChallengeSize)
		}
	})
}

// FuzzSync sends POST /v1/cards/{serial}/sync with a fuzzed serial, body
// and content type: the hex fields, the card's answers in them, the
// exchange. Without the card's keys it cannot get past the MAC; FuzzSyncAnswer
// goes further.
func FuzzSync(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, serial string, body []byte, contentType string) {
		fs.serve(t, request(http.MethodPost, "/v1/cards/"+url.PathEscape(serial)+"/sync", body, "", contentType))
	})
}

// FuzzSyncAnswer sends syncs that authenticate: the harness gets a fresh
// challenge and builds the card's BEGIN SYNC answer from the fuzz input
// (its status template, its key, its LIST) with a valid MAC under the
// card's K_auth, so that the fuzzed card state reaches the box's settling
// and planning. An accepted sync must answer a plan the card would take
// (consecutive authorisations, each MAC right); a refused one changes
// nothing; and what it registers must not make later requests fail.
//
// Input: the status template's fields, LIST entries (4 bytes each: which
// ticket, state, gate, size), final, exchange (give, take) and flags (see
// syncRequest's).
func FuzzSyncAnswer(f *testing.F) {
	fs := newFuzzServer(f)
	for _, s := range syncAnswerSeeds {
		f.Add(s.status, s.list, s.final, s.exchange, s.flags)
	}
	f.Fuzz(func(t *testing.T, status, list []byte, final bool, exchange []byte, flags byte) {
		fs.syncAnswer(t, status, list, final, exchange, flags)
	})
}

// syncAnswerSeed is a FuzzSyncAnswer input and the status its sync gets.
type syncAnswerSeed struct {
	name         string
	status, list []byte
	final        bool
	exchange     []byte
	flags        byte
	want         int
}

// syncAnswerSeeds are FuzzSyncAnswer's seeds: a card of 1 KiB that holds
// two tickets, syncing as a handset does, then bent one way each.
var syncAnswerSeeds = func() []syncAnswerSeed {
	st := []byte{0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 6, 2, 0, 8, 0, 0, 0, 0}
	return []syncAnswerSeed{
		{"plan", st, []byte{0, 0, 0, 0, 1, 0, 0, 0}, false, nil, syncCounter, 200},
		{"final, one checked", st, []byte{0, 1, 0, 0}, true, nil, syncCounter, 200},
		{"exchange", st, []byte{0, 0, 0, 0, 2, 0, 0, 0}, false, []byte{2, 11}, syncCounter | syncExchange, 200},
		{"counter outside the plan", st, nil, false, nil, 0, 200},
		{"first sync of another card", st, nil, false, nil, syncOther, 200},
		{"not a key", st, nil, true, nil, syncOther | syncBadKey, 400},
		{"replayed epoch", st, nil, false, nil, syncReplay, 409},
		{"LIST not the digest's", st, []byte{0, 0, 0, 0}, false, nil, syncCounter | syncBadList, 409},
		{"made-up tickets", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
			[]byte{0x89, 1, 9, 9, 0x90, 0, 0, 1}, false, nil, 0, 200},
	}
}()

// TestSyncAnswerSeeds checks FuzzSyncAnswer's harness: its seeds
// authenticate and reach the box's settling and planning (or the refusal
// each is made for).
func TestSyncAnswerSeeds(t *testing.T) {
	fs := newFuzzServer(t)
	planned := 0
	for _, s := range syncAnswerSeeds {
		code, ans := fs.syncAnswer(t, s.status, s.list, s.final, s.exchange, s.flags)
		require.Equal(t, s.want, code, s.name)
		planned += len(ans.Steps)
	}
	require.Positive(t, planned, "the seeds get plans")
}

// Flags of syncRequest.
const (
	syncOther    = 1 << iota // the card known only from an order
	syncBadKey               // a card key that is not a P-256 point
	syncReplay               // the epoch the box accepted last
	syncExchange             // an exchange (give, take)
	syncCounter              // the counter the box expects (else the input's)
	syncBadList              // a LIST that is not the one the digest covers
)

// syncRequest gets a fresh challenge and builds a sync request that
// authenticates: the card's BEGIN SYNC answer made from status (the status
// template's fields) and list (LIST entries, 4 bytes each: which ticket,
// state, gate, size), with a valid MAC under the card's K_auth.
func (fs *fuzzServer) syncRequest(t testing.TB, status, list []byte, final bool, exchange []byte, flags byte) (
	serial ticketfmt.Serial, epoch uint32, keys cardkeys.Keys, tickets []*box.Ticket, body []byte) {
	ctx := context.Background()
	serial = fs.serial
	if flags&syncOther != 0 {
		serial = fs.other
	}
	rec := fs.serve(t, request(http.MethodPost, "/v1/cards/"+serial.String()+"/challenge", nil, "", ""))
	require.Equal(t, http.StatusCreated, rec.Code)
	var ch api.ChallengeAnswer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ch))
	challenge, err := hex.DecodeString(ch.Challenge)
	require.NoError(t, err)

	var card *store.Card
	require.NoError(t, fs.store.View(ctx, func(tx store.Tx) error {
		if card, err = tx.Card(ctx, serial); err != nil {
			return err
		}
		tickets, err = tx.TicketsOf(ctx, serial)
		return err
	}))
	field := func(i int) byte {
		if i < len(status) {
			return status[i]
		}
		return 0
	}
	epoch = card.Epoch + 1 + uint32(field(13)%2)
	if flags&syncReplay != 0 {
		epoch = card.Epoch
	}
	counter := binary.BigEndian.Uint32([]byte{field(9), field(10), field(11), field(12)})
	if flags&syncCounter != 0 {
		counter = card.Plan.C0 + uint32(len(card.Plan.Items))
	}
	key := fs.cardKey
	if flags&syncBadKey != 0 {
		key = append([]byte{0x04}, bytes.Repeat([]byte{field(0) | 1}, 64)...)
	}

	// LIST: entries for this card's tickets (or made-up IDs), in the
	// states the input gives.
	lb := tlv.NewBuilder(nil)
	for i := 0; i+4 <= len(list) && i < 4*40; i += 4 {
		e := list[i : i+4]
		id, date, tod, size := ticketfmt.ID{0xEE, e[0]}, ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, ticketfmt.TimeOfDay{Hour: 19}, int(e[3])
		if e[0]&0x80 == 0 && len(tickets) > 0 {
			tk := tickets[int(e[0])%len(tickets)]
			id, date, tod = tk.ID, tk.Date, tk.Time
			if e[3]&1 == 0 {
				size = len(tk.Raw)
			}
		}
		lb.AddConstructed(cardproto.TagListEntry, func(b *tlv.Builder) {
			b.AddBytes(ticketfmt.TagID, id[:])
			b.AddBytes(ticketfmt.TagDate, date.AppendBCD(nil))
			b.AddBytes(ticketfmt.TagTime, tod.AppendBCD(nil))
			b.AddUint16(cardproto.TagLength, uint16(size))
			b.AddUint8(cardproto.TagState, e[1]%2)
			if e[1]%2 == 1 {
				b.AddBytes(cardproto.TagGateID, []byte{'G', 'A', 'T', e[2]})
				b.AddBytes(cardproto.TagCheckTime, ticketfmt.DateTime{Date: date, Hour: int(e[2] % 24)}.AppendBCD(nil))
			}
		})
	}
	entries, err := lb.Bytes()
	require.NoError(t, err)
	digest := sha256.Sum256(entries)
	if flags&syncBadList != 0 {
		entries = append(entries, 0xE2, 0x00)
	}
	b := tlv.NewBuilder(nil)
	b.AddConstructed(cardproto.TagStatus, func(b *tlv.Builder) {
		b.AddUint16(cardproto.TagCapacity, binary.BigEndian.Uint16([]byte{field(0), field(1)}))
		b.AddUint16(cardproto.TagFree, binary.BigEndian.Uint16([]byte{field(2), field(3)}))
		b.AddUint16(cardproto.TagReclaimable, binary.BigEndian.Uint16([]byte{field(4), field(5)}))
		b.AddUint8(cardproto.TagMaxTickets, field(6))
		b.AddUint8(cardproto.TagStored, field(7))
		b.AddUint8(cardproto.TagChecked, field(8))
		b.AddUint8(cardproto.TagOverhead, field(9)%17)
		b.AddUint32(cardproto.TagCounter, counter)
		b.AddBytes(cardproto.TagSerial, serial[:])
		b.AddUint16(cardproto.TagVersion, applet.Version)
		b.AddUint32(cardproto.TagEpoch, epoch)
	})
	b.AddBytes(cardproto.TagCardKey, key)
	b.AddBytes(cardproto.TagDigest, digest[:])
	v, err := b.Bytes()
	require.NoError(t, err)
	keys, err = cardkeys.Derive(fs.keys.Master(), serial)
	require.NoError(t, err)
	e4b := tlv.NewBuilder(nil)
	e4b.AddConstructed(cardproto.TagSync, func(b *tlv.Builder) {
		b.AddRaw(v)
		b.AddBytes(cardproto.TagMAC, cardkeys.SyncMAC(keys, challenge, v))
	})
	e4, err := e4b.Bytes()
	require.NoError(t, err)
	req := api.SyncRequest{Challenge: ch.Challenge, BeginSync: hex.EncodeToString(e4), List: hex.EncodeToString(entries), Final: final}
	if flags&syncExchange != 0 && len(tickets) > 0 {
		give, take := byte(0), byte(1)
		if len(exchange) >= 2 {
			give, take = exchange[0], exchange[1]
		}
		req.Exchange = &api.ExchangeRequest{Give: tickets[int(give)%len(tickets)].ID, Take: tickets[int(take)%len(tickets)].ID}
	}
	body, err = json.Marshal(req)
	require.NoError(t, err)
	return serial, epoch, keys, tickets, body
}

// syncAnswer runs one FuzzSyncAnswer input and returns the sync's status
// code and plan.
func (fs *fuzzServer) syncAnswer(t *testing.T, status, list []byte, final bool, exchange []byte, flags byte) (int, api.SyncAnswer) {
	serial, epoch, keys, tickets, body := fs.syncRequest(t, status, list, final, exchange, flags)
	rec := fs.serve(t, request(http.MethodPost, "/v1/cards/"+serial.String()+"/sync", body, "", "application/json"))
	if rec.Code != http.StatusOK {
		return rec.Code, api.SyncAnswer{}
	}
	var ans api.SyncAnswer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ans))
	require.Equal(t, epoch, ans.Epoch)
	if final {
		require.Empty(t, ans.Steps, "a final sync plans nothing")
	}
	for i, s := range ans.Steps {
		a := cardkeys.Authorisation{Epoch: epoch, Counter: ans.Counter + uint32(i)}
		require.Equal(t, hex.EncodeToString(a.Bytes()), s.Auth, "step %d: consecutive authorisations", i)
		var mac []byte
		switch s.Op {
		case "STORE", "PUT CERTIFICATE":
			obj, err := hex.DecodeString(s.Object)
			require.NoError(t, err)
			if s.Op == "STORE" {
				mac = cardkeys.StoreMAC(keys, serial, a, obj)
			} else {
				mac = cardkeys.CertMAC(keys, serial, a, obj)
			}
		case "DELETE":
			id, err := ticketfmt.ParseID(s.Ticket)
			require.NoError(t, err)
			require.NotNil(t, s.ExpectedState)
			mac = cardkeys.DeleteMAC(keys, serial, a, id, *s.ExpectedState)
		default:
			t.Fatalf("step %d: unknown operation %q", i, s.Op)
		}
		require.Equal(t, hex.EncodeToString(mac), s.MAC, "step %d (%s): the card would take its MAC", i, s.Op)
	}
	// What the sync registered serves the card's later requests.
	fs.serve(t, request(http.MethodGet, "/v1/cards/"+serial.String()+"/tickets", nil, ans.Session, ""))
	if len(tickets) > 0 {
		rec := fs.journal
		rec.TicketID, rec.Serial = tickets[0].ID, serial
		body, err := json.Marshal(api.JournalRequest{Checks: []api.JournalRecord{rec}})
		require.NoError(t, err)
		fs.serve(t, request(http.MethodPost, "/v1/gate/journal", body, fs.keys.GateToken(), "application/json"))
	}
	return http.StatusOK, ans
}

// FuzzJournal sends POST /v1/gate/journal with a fuzzed body, content
// type and credentials.
func FuzzJournal(f *testing.F) {
	fs := newFuzzServer(f)
	good, err := json.Marshal(api.JournalRequest{Checks: []api.JournalRecord{fs.journal}})
	require.NoError(f, err)
	forged := fs.journal
	forged.GateID = "47415432"
	other := fs.journal
	other.TicketID = fs.tickets[len(fs.tickets)-1]
	unknown := fs.journal
	unknown.Serial = fs.other
	all, err := json.Marshal(api.JournalRequest{Checks: []api.JournalRecord{fs.journal, forged, other, unknown}})
	require.NoError(f, err)
	f.Add(good, "application/json", byte(0))
	f.Add(all, "application/json", byte(0))
	f.Add([]byte(strings.Replace(string(good), "T19:", "T+1:", 1)), "application/json", byte(0))
	f.Fuzz(func(t *testing.T, body []byte, contentType string, auth byte) {
		fs.serve(t, request(http.MethodPost, "/v1/gate/journal", body, fs.token(auth, fs.keys.GateToken()), contentType))
	})
}

// FuzzEvents sends the watching handset's long poll, GET
// /v1/cards/{serial}/events?wait=..., with a fuzzed serial, query and
// credentials (the server waits at most a millisecond here).
func FuzzEvents(f *testing.F) {
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, serial, query string, auth byte) {
		target := "/v1/cards/" + url.PathEscape(serial) + "/events"
		if query != "" {
			target += "?" + query
		}
		req := request(http.MethodGet, target, nil, fs.token(auth, fs.keys.OperatorToken()), "")
		if req == nil {
			return // not a request URI: an HTTP server refuses it before any handler
		}
		fs.serve(t, req)
	})
}

// FuzzPaths sends any method (one of methods, by index) and request
// target, with or without a body and credentials: the path parameters (serial, carrier), unknown paths and
// methods, query strings, every GET endpoint. Rotating the issuer key (an
// operator's action without input) is left out: thousands of rotations
// would only slow the run.
func FuzzPaths(f *testing.F) {
	fs := newFuzzServer(f)
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions, "BREW"}
	f.Fuzz(func(t *testing.T, method byte, target string, body []byte, auth byte) {
		m := methods[int(method)%len(methods)]
		token := fs.keys.OperatorToken()
		if strings.Contains(target, "gate") {
			token = fs.keys.GateToken()
		}
		req := request(m, target, body, fs.token(auth, token), "application/json")
		if req == nil {
			return // not a request URI: an HTTP server refuses it before any handler
		}
		if m == http.MethodPost && strings.Contains(req.URL.Path, "rotate") {
			return
		}
		fs.serve(t, req)
	})
}
