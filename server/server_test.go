package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// env is a server on SQLite in a temporary data dir, every answer checked
// against api/openapi.yaml.
type env struct {
	t      *testing.T
	keys   *issuer.Keys
	store  store.Store
	srv    *server.Server
	http   *httptest.Server
	router routers.Router
}

func init() {
	openapi3filter.RegisterBodyDecoder("application/x-pem-file", openapi3filter.FileBodyDecoder)
}

func newEnv(t *testing.T) *env {
	e, _ := newKeysEnv(t, "", nil)
	return e
}

// checked serves a request and validates the answer against the OpenAPI
// document.
func (e *env) checked(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, r)
	if route, params, err := e.router.FindRoute(r); err == nil {
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		out.SetBodyBytes(rec.Body.Bytes())
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			e.t.Errorf("%s %s answered %d, not as api/openapi.yaml says: %v", r.Method, r.URL.Path, rec.Code, err)
		}
	} else if r.URL.Path != "/nope" && !errors.Is(err, routers.ErrMethodNotAllowed) {
		e.t.Errorf("%s %s is not in api/openapi.yaml: %v", r.Method, r.URL.Path, err)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (e *env) client(token string) *apiclient.Client {
	c, err := apiclient.New(e.http.URL, token, nil)
	require.NoError(e.t, err)
	return c
}

func (e *env) raw(method, path, token, body string) (int, string) {
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// newCard personalises a card with the server's master secret.
func (e *env) newCard(serialHex string) (*emulator.Card, ticketfmt.Serial) {
	serial, err := ticketfmt.ParseSerial(serialHex)
	require.NoError(e.t, err)
	ram, err := emulator.Personalise(applet.Personalisation{Serial: serial, Master: e.keys.Master()})
	require.NoError(e.t, err)
	c, err := emulator.New(ram, emulator.Options{})
	require.NoError(e.t, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := c.PowerOn(context.Background(), i)
		require.NoError(e.t, err)
	}
	return c, serial
}

func corpusOrder(t *testing.T, carrier, key string, from, n int) api.OrderRequest {
	ts, err := corpus.Tickets()
	require.NoError(t, err)
	req := api.OrderRequest{Carrier: carrier, IdempotencyKey: key}
	for i := from; i < from+n; i++ {
		tk := ts[i%len(ts)]
		req.Tickets = append(req.Tickets, api.OrderTicket{Type: tk.Type, Seller: tk.Seller, Date: tk.Date, Time: tk.Time,
			Price: tk.Price, Seat: tk.Seat, Instructions: tk.Instructions})
	}
	return req
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e := newEnv(t)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	require.NoError(t, err)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(documented)
	served := e.srv.Routes()
	sort.Strings(served)
	assert.Equal(t, documented, served)
}

func TestOrdersAndSync(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	op := e.client(e.keys.OperatorToken())
	card, serial := e.newCard("89860012345678901234")

	// An order for a card the server has not seen: everything to the box.
	first, err := op.Order(ctx, corpusOrder(t, serial.String(), "order-1", 0, 24))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"card": 0, "box": 24}, first.Summary)
	again, err := op.Order(ctx, corpusOrder(t, serial.String(), "order-1", 0, 24))
	require.NoError(t, err)
	assert.True(t, again.Replayed, "the same order twice issues its tickets once")
	assert.Equal(t, first.Tickets, again.Tickets)
	_, err = op.Order(ctx, corpusOrder(t, serial.String(), "order-1", 1, 24))
	assertStatus(t, err, http.StatusUnprocessableEntity)

	// The handset's first sync registers and certifies the card and fills it.
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: e.client("")}
	res, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	assert.Zero(t, res.Refused)
	// Soonest first, each that fits: eleven, then a smaller later one in
	// the room the twelfth soonest does not fit.
	assert.Equal(t, 13, res.Planned, "the certificate and twelve tickets")
	assert.Equal(t, res.Planned, res.Steps)
	assert.Equal(t, 12, res.Status.Stored)
	assert.Equal(t, 12, res.Waiting)
	fci, err := hostlib.NewApplet(card.Port(applet.Contactless), hostlib.ClientOptions{}).Select(ctx)
	require.NoError(t, err)
	require.NotNil(t, fci.Certificate, "the card is certified")
	cert, err := ticketfmt.UnmarshalCertificate(fci.Certificate)
	require.NoError(t, err)
	require.NoError(t, cert.Verify(e.keys.KeySet()))

	// Where each ticket is, for the operator and for the holder's session.
	list, err := op.Tickets(ctx, serial.String())
	require.NoError(t, err)
	states := map[string]int{}
	for _, tv := range list.Tickets {
		states[string(tv.State)]++
	}
	assert.Equal(t, map[string]int{"card": 12, "box": 12}, states)
	mine, err := e.client(res.Session).Tickets(ctx, serial.String())
	require.NoError(t, err)
	assert.Len(t, mine.Tickets, 24)
	_, other := e.newCard("89860012345678909999")
	_, err = e.client(res.Session).Tickets(ctx, other.String())
	assertStatus(t, err, http.StatusForbidden)
	_, err = e.client("").Tickets(ctx, serial.String())
	assertStatus(t, err, http.StatusUnauthorized)

	// A repeated sync changes nothing.
	res2, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	assert.Zero(t, res2.Planned)
	assert.Equal(t, 12, res2.Status.Stored)

	// A gate checks a ticket; the next sync deletes it and stores the next.
	gate := hostlib.NewApplet(card.Port(applet.Contactless), hostlib.ClientOptions{})
	_, err = gate.Select(ctx)
	require.NoError(t, err)
	found, err := gate.Find(ctx, cardproto.Query{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}})
	require.NoError(t, err)
	check := cardproto.CheckRecord{Gate: [4]byte{'G', 'A', 'T', '1'}, Time: ticketfmt.DateTime{Date: found.Ticket.Date, Hour: 19}}
	nonce := [16]byte{1, 2, 3}
	receipt, err := gate.Check(ctx, found.Ticket.ID, check, nonce)
	require.NoError(t, err)
	res3, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, res3.Steps, 2, "a DELETE of the checked ticket and a STORE")
	assert.Equal(t, 0, res3.Status.Checked)

	// The gate's journal: recorded once, harmless twice; on the deny list.
	gc := e.client(e.keys.GateToken())
	rec := api.JournalRecord{TicketID: found.Ticket.ID, Serial: serial, GateID: hex.EncodeToString(check.Gate[:]),
		Time: check.Time.String(), Nonce: hex.EncodeToString(nonce[:]), Receipt: hex.EncodeToString(receipt)}
	ja, err := gc.Journal(ctx, []api.JournalRecord{rec})
	require.NoError(t, err)
	assert.Equal(t, 1, ja.Accepted)
	ja, err = gc.Journal(ctx, []api.JournalRecord{rec})
	require.NoError(t, err)
	assert.Equal(t, 1, ja.Duplicates)
	deny, err := gc.Deny(ctx)
	require.NoError(t, err)
	assert.Contains(t, deny, found.Ticket.ID)
	// Another check of the same ticket: a cloned card.
	rec2 := rec
	rec2.GateID = "47415432"
	ja, err = gc.Journal(ctx, []api.JournalRecord{rec2})
	require.NoError(t, err)
	assert.Len(t, ja.Rejected, 1, "its receipt does not verify for that gate")
	_, err = e.client(e.keys.OperatorToken()).Deny(ctx)
	assertStatus(t, err, http.StatusUnauthorized)

	keys, err := e.client("").IssuerKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, e.keys.KeySet().IDs(), keys.IDs())
}

func TestSyncRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	card, serial := e.newCard("89860012345678901234")
	a := hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{})
	_, err := a.Select(ctx)
	require.NoError(t, err)
	box := e.client("")
	ch, err := box.Challenge(ctx, serial)
	require.NoError(t, err)
	var c [16]byte
	b, _ := hex.DecodeString(ch.Challenge)
	copy(c[:], b)
	_, e4, err := a.BeginSync(ctx, c)
	require.NoError(t, err)
	_, list, err := a.List(ctx)
	require.NoError(t, err)
	req := api.SyncRequest{Challenge: ch.Challenge, BeginSync: hex.EncodeToString(e4), List: hex.EncodeToString(list)}
	_, err = box.Sync(ctx, serial, req)
	require.NoError(t, err)
	_, err = box.Sync(ctx, serial, req)
	assertStatus(t, err, http.StatusForbidden) // the challenge is single use

	// A sync without the card: a made-up answer does not authenticate.
	ch, err = box.Challenge(ctx, serial)
	require.NoError(t, err)
	forged := append([]byte(nil), e4...)
	forged[len(forged)-1] ^= 1
	_, err = box.Sync(ctx, serial, api.SyncRequest{Challenge: ch.Challenge, BeginSync: hex.EncodeToString(forged), List: ""})
	assertStatus(t, err, http.StatusForbidden)
	// The card's old answer with a new challenge: its MAC covers the old one.
	_, err = box.Sync(ctx, serial, api.SyncRequest{Challenge: ch.Challenge, BeginSync: hex.EncodeToString(e4), List: ""})
	assertStatus(t, err, http.StatusForbidden)
	// LIST that does not match the digest.
	ch, err = box.Challenge(ctx, serial)
	require.NoError(t, err)
	b, _ = hex.DecodeString(ch.Challenge)
	copy(c[:], b)
	_, e4, err = a.BeginSync(ctx, c)
	require.NoError(t, err)
	_, err = box.Sync(ctx, serial, api.SyncRequest{Challenge: ch.Challenge, BeginSync: hex.EncodeToString(e4), List: "e200"})
	assertStatus(t, err, http.StatusConflict)

	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"POST", "/v1/orders", "", `{}`, 401},
		{"POST", "/v1/orders", e.keys.OperatorToken(), `{"carrier":`, 400},
		{"POST", "/v1/orders", e.keys.OperatorToken(), `{"carrier":"x","tickets":[],"idempotency_key":"k","extra":1}`, 400},
		{"POST", "/v1/orders", e.keys.OperatorToken(), `{"carrier":"+8613800000000","idempotency_key":"k","tickets":[{"type":1,"seller":"S","date":"2026-12-05","time":"19:30","price":1}]}`, 404},
		{"POST", "/v1/orders", e.keys.OperatorToken(), `{"carrier":"89860012345678901234","tickets":[{"type":1,"seller":"S","date":"2026-12-05","time":"19:30","price":1}]}`, 400},
		{"POST", "/v1/orders", e.keys.OperatorToken(), `{"carrier":"89860012345678901234","idempotency_key":"k","tickets":[{"type":1,"seller":"S","date":"2026-02-30","time":"19:30","price":1}]}`, 400},
		{"POST", "/v1/orders", e.keys.OperatorToken(), `{"carrier":"89860012345678901234","idempotency_key":"k","tickets":[{"type":1,"seller":"` + strings.Repeat("S", 65) + `","date":"2026-12-05","time":"19:30","price":1}]}`, 400},
		{"POST", "/v1/orders", e.keys.OperatorToken(), `{"carrier":"89860012345678901234","idempotency_key":"k","tickets":[` + strings.Repeat(`{"type":1,"seller":"S","date":"2026-12-05","time":"19:30","price":1},`, 20000) + `{}]}`, 413},
		{"POST", "/v1/cards/8986/challenge", "", "", 400},
		{"POST", "/v1/cards/89860012345678901234/sync", "", `{"challenge":"00","begin_sync":"","list":""}`, 400},
		{"POST", "/v1/cards/89860012345678901234/sync", "", `{"challenge":"000102030405060708090a0b0c0d0e0f","begin_sync":"e400","list":""}`, 400},
		{"PUT", "/v1/cards/89860012345678901234/msisdn", e.keys.OperatorToken(), `{"msisdn":"abc"}`, 400},
		{"POST", "/v1/gate/journal", e.keys.GateToken(), `{"checks":[{"ticket_id":"00","serial":"00","gate_id":"","time":"","nonce":"","receipt":""}]}`, 400},
		{"GET", "/v1/cards/89860012345678901234/events", "", "", 401},
		{"GET", "/nope", "", "", 404},
	} {
		code, body := e.raw(tc.method, tc.path, tc.token, tc.body)
		assert.Equal(t, tc.want, code, "%s %s: %s", tc.method, tc.path, body)
		var ea api.ErrorAnswer
		if assert.NoError(t, json.Unmarshal([]byte(body), &ea), "%s %s: a JSON error body", tc.method, tc.path) {
			assert.NotEmpty(t, ea.Error)
		}
	}
	// Nothing was issued by the refused orders.
	list2, err := e.client(e.keys.OperatorToken()).Tickets(ctx, serial.String())
	require.NoError(t, err)
	assert.Empty(t, list2.Tickets)
}

// TestWatchIsToldAtOnce: a handset waiting on the events long poll is
// answered as soon as an order makes a ticket due to its card.
func TestWatchIsToldAtOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	card, serial := e.newCard("89860012345678901234")
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: e.client("")}
	res, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	watcher := e.client(res.Session)
	_, err = watcher.Events(ctx, serial, 0)
	assert.ErrorIs(t, err, apiclient.ErrNoContent)

	got := make(chan int, 1)
	start := time.Now()
	go func() {
		n, err := watcher.Events(ctx, serial, 5*time.Second)
		if err != nil {
			n = -1
		}
		got <- n
	}()
	time.Sleep(100 * time.Millisecond)
	ans, err := e.client(e.keys.OperatorToken()).Order(ctx, corpusOrder(t, serial.String(), "o", 0, 1))
	require.NoError(t, err)
	assert.Equal(t, "card", ans.Tickets[0].Route, "the card has room: direct")
	select {
	case n := <-got:
		assert.Equal(t, 1, n)
		assert.Less(t, time.Since(start), 3*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("the watching handset was not told")
	}
}

func assertStatus(t *testing.T, err error, status int) {
	t.Helper()
	var ae *apiclient.Error
	if assert.True(t, errors.As(err, &ae), "want a %d error, got %v", status, err) {
		assert.Equal(t, status, ae.Status, ae.Message)
	}
}

func TestWrongMethod(t *testing.T) {
	e := newEnv(t)
	req, err := http.NewRequest(http.MethodDelete, e.http.URL+"/v1/orders", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "POST", resp.Header.Get("Allow"))
	var ans api.ErrorAnswer
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ans))
	assert.Contains(t, ans.Error, "this endpoint takes POST")

	code, body := e.raw(http.MethodGet, "/nope", "", "")
	assert.Equal(t, http.StatusNotFound, code, body)
}

// TestOrderPromisesHold: each ticket of an order, in the order's order,
// goes to the card when the card can take it by the room it last
// reported, less what is already due (network.md, Ordering); and what an
// order answered "card" is what the next sync stores, even after a
// sooner ticket is ordered that would otherwise go first.
func TestOrderPromisesHold(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	card, serial := e.newCard("89860012345678901234")
	op := e.client(e.keys.OperatorToken())
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: e.client("")}
	res, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	room, count := res.Status.AvailableBytes(), res.Status.AvailableTickets()
	h8 := res.Status.Overhead

	// The corpus in its own order, which is not soonest first: each
	// ticket judged on its own by the room left, in order.
	first, err := op.Order(ctx, corpusOrder(t, serial.String(), "promise-1", 0, 24))
	require.NoError(t, err)
	routes := map[ticketfmt.ID]string{}
	for i, ot := range first.Tickets {
		want := "box"
		if ot.Size+h8 <= room && count > 0 {
			want, room, count = "card", room-ot.Size-h8, count-1
		}
		assert.Equal(t, want, ot.Route, "ticket %d of the order (%d bytes)", i, ot.Size)
		routes[ot.ID] = ot.Route
	}
	require.Positive(t, first.Summary["box"], "the order overflows the card")

	// A ticket sooner than all of them, too big for the room left: the box.
	sooner := corpusOrder(t, serial.String(), "promise-2", 8, 1) // the largest of the corpus
	sooner.Tickets[0].Date = ticketfmt.Date{Year: 2026, Month: 12, Day: 1}
	second, err := op.Order(ctx, sooner)
	require.NoError(t, err)
	require.Greater(t, second.Tickets[0].Size+h8, room, "the test needs a ticket that does not fit what is left")
	assert.Equal(t, "box", second.Tickets[0].Route)
	routes[second.Tickets[0].ID] = "box"

	// Before the sync, all are in the box; those answered "card" are due.
	before, err := op.Tickets(ctx, serial.String())
	require.NoError(t, err)
	for _, tv := range before.Tickets {
		assert.Equal(t, "box", string(tv.State))
		assert.Equal(t, routes[tv.ID] == "card", tv.Due, "ticket %v", tv.ID)
	}

	// The next sync keeps every answer.
	_, err = h.Sync(ctx, nil)
	require.NoError(t, err)
	list, err := op.Tickets(ctx, serial.String())
	require.NoError(t, err)
	require.Len(t, list.Tickets, len(routes))
	for _, tv := range list.Tickets {
		assert.Equal(t, routes[tv.ID], string(tv.State), "ticket %v", tv.ID)
	}
}

// TestBearerScheme: the Authorization scheme name is case-insensitive;
// another scheme, or none, is no token.
func TestBearerScheme(t *testing.T) {
	e := newEnv(t)
	for header, want := range map[string]int{
		"Bearer " + e.keys.GateToken():     http.StatusOK,
		"bearer " + e.keys.GateToken():     http.StatusOK,
		"BEARER  " + e.keys.GateToken():    http.StatusOK,
		"Basic " + e.keys.GateToken():      http.StatusUnauthorized,
		e.keys.GateToken():                 http.StatusUnauthorized,
		"Bearer " + e.keys.OperatorToken(): http.StatusUnauthorized,
	} {
		req, err := http.NewRequest(http.MethodGet, e.http.URL+"/v1/gate/deny", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", header)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, "Authorization: %.12s…", header)
	}
}
