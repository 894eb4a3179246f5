package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/sqlite"
)

// badRequest is one wrong, missing, oversized or hostile request and the
// refusal it gets.
type badRequest struct {
	name        string
	method      string
	path        string
	token       string // "op", "gate", "session", "other-session" or a literal token
	contentType string // "" for application/json when there is a body
	header      map[string]string
	body        string
	// prepare, if set, gives the path and body (it may change the
	// database: the comparison starts after it).
	prepare func(t *testing.T, fs *fuzzServer) (path string, body []byte)
	want    int
	msg     string // what the error message says
}

// TestBadInputEverywhere sends every endpoint wrong, missing, oversized and
// hostile input over HTTP: each is refused with a 4xx status and a JSON
// {"error": "..."} whose message says what is wrong, and the database is
// exactly as it was, row by row.
func TestBadInputEverywhere(t *testing.T) {
	fs := newFuzzServer(t)
	hs := httptest.NewServer(fs.srv.Handler())
	t.Cleanup(hs.Close)
	serial := fs.serial.String()
	card := "/v1/cards/" + serial
	ticket := `{"type":1,"seller":"S","date":"2026-12-05","time":"19:30","price":1}`
	order := func(fields string) string {
		return `{"carrier":"` + serial + `","idempotency_key":"bad-1","tickets":[` + ticket + `]` + fields + `}`
	}
	huge := `{"carrier":"` + strings.Repeat("8", 1<<20) + `"}`
	journal := func(mutate func(r *api.JournalRecord)) string {
		rec := fs.journal
		mutate(&rec)
		b, err := json.Marshal(api.JournalRequest{Checks: []api.JournalRecord{rec}})
		require.NoError(t, err)
		return string(b)
	}
	syncWith := func(flags byte, list []byte, mutate func(r *api.SyncRequest)) func(*testing.T, *fuzzServer) (string, []byte) {
		return func(t *testing.T, fs *fuzzServer) (string, []byte) {
			st := []byte{0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 6, 2, 0, 8, 0, 0, 0, 0}
			s, _, _, _, body := fs.syncRequest(t, st, list, false, []byte{0, 1}, flags|syncCounter)
			if mutate != nil {
				var req api.SyncRequest
				require.NoError(t, json.Unmarshal(body, &req))
				mutate(&req)
				var err error
				body, err = json.Marshal(req)
				require.NoError(t, err)
			}
			return "/v1/cards/" + s.String() + "/sync", body
		}
	}
	cases := []badRequest{
		// POST /v1/orders
		{name: "order without a token", method: "POST", path: "/v1/orders", body: order(""), want: 401, msg: "operator token"},
		{name: "order with the gate token", method: "POST", path: "/v1/orders", token: "gate", body: order(""), want: 401, msg: "operator token"},
		{name: "order with a holder's session", method: "POST", path: "/v1/orders", token: "session", body: order(""), want: 401, msg: "operator token"},
		{name: "order with basic auth", method: "POST", path: "/v1/orders", header: map[string]string{"Authorization": "Basic b3A6b3A="}, body: order(""), want: 401, msg: "operator token"},
		{name: "order as text", method: "POST", path: "/v1/orders", token: "op", contentType: "text/plain", body: order(""), want: 415, msg: "send application/json"},
		{name: "order as a form", method: "POST", path: "/v1/orders", token: "op", contentType: "application/x-www-form-urlencoded", body: "carrier=" + serial, want: 415, msg: "send application/json"},
		{name: "order without a body", method: "POST", path: "/v1/orders", token: "op", want: 400, msg: "malformed JSON body"},
		{name: "order, invalid JSON", method: "POST", path: "/v1/orders", token: "op", body: `{"carrier":`, want: 400, msg: "malformed JSON body"},
		{name: "order, two documents", method: "POST", path: "/v1/orders", token: "op", body: order("") + order(""), want: 400, msg: "more than one document"},
		{name: "order, unknown field", method: "POST", path: "/v1/orders", token: "op", body: order(`,"discount":100`), want: 400, msg: `unknown field "discount"`},
		{name: "order, unknown ticket field", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"price":1`, `"price":1,"vip":true`, 1), want: 400, msg: `unknown field "vip"`},
		{name: "order, JSON null", method: "POST", path: "/v1/orders", token: "op", body: `null`, want: 400, msg: "carrier is required"},
		{name: "order, an array", method: "POST", path: "/v1/orders", token: "op", body: `[]`, want: 400, msg: "malformed JSON body"},
		{name: "order, tickets not a list", method: "POST", path: "/v1/orders", token: "op", body: `{"carrier":"` + serial + `","idempotency_key":"k","tickets":{}}`, want: 400, msg: "malformed JSON body"},
		{name: "order, huge price", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"price":1`, `"price":1e400`, 1), want: 400, msg: "malformed JSON body"},
		{name: "order, price over 32 bits", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"price":1`, `"price":4294967296`, 1), want: 400, msg: "price"},
		{name: "order, negative price", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"price":1`, `"price":-1`, 1), want: 400, msg: "price"},
		{name: "order, fractional price", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"price":1`, `"price":1.5`, 1), want: 400, msg: "price"},
		{name: "order, type 256", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"type":1`, `"type":256`, 1), want: 400, msg: "type"},
		{name: "order, no such date", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `2026-12-05`, `2026-02-30`, 1), want: 400, msg: "date"},
		{name: "order, no such time", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `19:30`, `24:00`, 1), want: 400, msg: "time"},
		{name: "order, no seller", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"seller":"S",`, ``, 1), want: 400, msg: "ticket 1"},
		{name: "order, seller too long", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"S"`, `"`+strings.Repeat("S", 65)+`"`, 1), want: 400, msg: "ticket 1"},
		{name: "order, seat too long", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), `"price":1`, `"price":1,"seat":"`+strings.Repeat("座", 11)+`"`, 1), want: 400, msg: "ticket 1"},
		{name: "order without a carrier", method: "POST", path: "/v1/orders", token: "op", body: `{"idempotency_key":"k","tickets":[` + ticket + `]}`, want: 400, msg: "carrier is required"},
		{name: "order for neither a serial nor an MSISDN", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), serial, "8986-0012", 1), want: 400, msg: "neither a card serial"},
		{name: "order for an unknown MSISDN", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), serial, "+8613999999999", 1), want: 404, msg: "no card is registered"},
		{name: "order without an idempotency key", method: "POST", path: "/v1/orders", token: "op", body: `{"carrier":"` + serial + `","tickets":[` + ticket + `]}`, want: 400, msg: "idempotency key is required"},
		{name: "order, idempotency key too long", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), "bad-1", strings.Repeat("k", 201), 1), want: 400, msg: "longer than 200"},
		{name: "order, idempotency key with NUL", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), "bad-1", `bad\u0000`, 1), want: 400, msg: "printable UTF-8"},
		{name: "order, idempotency key header not UTF-8", method: "POST", path: "/v1/orders", token: "op", header: map[string]string{"Idempotency-Key": "\xff\xfe"}, body: `{"carrier":"` + serial + `","tickets":[` + ticket + `]}`, want: 400, msg: "printable UTF-8"},
		{name: "order, idempotency keys differ", method: "POST", path: "/v1/orders", token: "op", header: map[string]string{"Idempotency-Key": "other"}, body: order(""), want: 400, msg: "differ"},
		{name: "order, idempotency key used for another order", method: "POST", path: "/v1/orders", token: "op", body: strings.Replace(order(""), "bad-1", "seed-1", 1), want: 422, msg: "used for another order"},
		{name: "order without tickets", method: "POST", path: "/v1/orders", token: "op", body: `{"carrier":"` + serial + `","idempotency_key":"k","tickets":[]}`, want: 400, msg: "at least one ticket"},
		{name: "order of 101 tickets", method: "POST", path: "/v1/orders", token: "op", body: `{"carrier":"` + serial + `","idempotency_key":"k","tickets":[` + strings.TrimSuffix(strings.Repeat(ticket+",", 101), ",") + `]}`, want: 400, msg: "at most 100"},
		{name: "order over the body limit", method: "POST", path: "/v1/orders", token: "op", body: huge, want: 413, msg: "request body over 1048576 bytes"},
		{name: "orders, GET", method: "GET", path: "/v1/orders", token: "op", want: 405, msg: "this endpoint takes"},
		{name: "orders, DELETE", method: "DELETE", path: "/v1/orders", token: "op", want: 405, msg: "this endpoint takes"},

		// PUT /v1/cards/{serial}/msisdn
		{name: "MSISDN without a token", method: "PUT", path: card + "/msisdn", body: `{"msisdn":"+8613900139000"}`, want: 401, msg: "operator token"},
		{name: "MSISDN for a bad serial", method: "PUT", path: "/v1/cards/8986/msisdn", token: "op", body: `{"msisdn":"+8613900139000"}`, want: 400, msg: "card serial"},
		{name: "MSISDN for a serial in non-hex", method: "PUT", path: "/v1/cards/8986001234567890123z/msisdn", token: "op", body: `{"msisdn":"+8613900139000"}`, want: 400, msg: "card serial"},
		{name: "MSISDN not digits", method: "PUT", path: card + "/msisdn", token: "op", body: `{"msisdn":"call me"}`, want: 400, msg: "want 5 to 15 digits"},
		{name: "MSISDN too long", method: "PUT", path: card + "/msisdn", token: "op", body: `{"msisdn":"+8613800138000123456"}`, want: 400, msg: "want 5 to 15 digits"},
		{name: "MSISDN missing", method: "PUT", path: card + "/msisdn", token: "op", body: `{}`, want: 400, msg: "want 5 to 15 digits"},
		{name: "MSISDN a number", method: "PUT", path: card + "/msisdn", token: "op", body: `{"msisdn":8613900139000}`, want: 400, msg: "malformed JSON body"},
		{name: "MSISDN, unknown field", method: "PUT", path: card + "/msisdn", token: "op", body: `{"msisdn":"+8613900139000","imsi":"1"}`, want: 400, msg: `unknown field "imsi"`},
		{name: "MSISDN of another card", method: "PUT", path: "/v1/cards/" + fs.other.String() + "/msisdn", token: "op", body: `{"msisdn":"` + fs.msisdn + `"}`, want: 409, msg: "registered for another card"},
		{name: "MSISDN as text", method: "PUT", path: card + "/msisdn", token: "op", contentType: "text/plain", body: `{"msisdn":"+8613900139000"}`, want: 415, msg: "send application/json"},
		{name: "MSISDN over the body limit", method: "PUT", path: card + "/msisdn", token: "op", body: huge, want: 413, msg: "request body over"},
		{name: "MSISDN, POST", method: "POST", path: card + "/msisdn", token: "op", body: `{"msisdn":"+8613900139000"}`, want: 405, msg: "this endpoint takes"},

		// GET /v1/carriers/{carrier}/tickets and /v1/cards/{serial}/tickets
		{name: "carrier tickets without a token", method: "GET", path: "/v1/carriers/" + serial + "/tickets", want: 401, msg: "operator token"},
		{name: "carrier tickets with a holder's session", method: "GET", path: "/v1/carriers/" + serial + "/tickets", token: "session", want: 401, msg: "operator token"},
		{name: "carrier tickets, bad carrier", method: "GET", path: "/v1/carriers/not-a-card/tickets", token: "op", want: 400, msg: "neither a card serial"},
		{name: "carrier tickets, NUL", method: "GET", path: "/v1/carriers/%2B86138%00/tickets", token: "op", want: 400, msg: "neither a card serial"},
		{name: "carrier tickets, unknown MSISDN", method: "GET", path: "/v1/carriers/%2B8613999999999/tickets", token: "op", want: 404, msg: "no card is registered"},
		{name: "card tickets without a token", method: "GET", path: card + "/tickets", want: 401, msg: "session won by the card"},
		{name: "card tickets with a made-up session", method: "GET", path: card + "/tickets", token: "AAAA.BBBB", want: 401, msg: "session won by the card"},
		{name: "card tickets with a session changed", method: "GET", path: card + "/tickets", token: "tampered-session", want: 401, msg: "session won by the card"},
		{name: "card tickets with another card's session", method: "GET", path: "/v1/cards/" + fs.other.String() + "/tickets", token: "session", want: 403, msg: "another card"},
		{name: "card tickets, bad serial", method: "GET", path: "/v1/cards/xyz/tickets", token: "op", want: 400, msg: "card serial"},

		// POST /v1/cards/{serial}/challenge
		{name: "challenge, bad serial", method: "POST", path: "/v1/cards/8986/challenge", want: 400, msg: "card serial"},
		{name: "challenge, serial too long", method: "POST", path: "/v1/cards/" + serial + "00/challenge", want: 400, msg: "card serial"},
		{name: "challenge, GET", method: "GET", path: card + "/challenge", want: 405, msg: "this endpoint takes"},

		// POST /v1/cards/{serial}/sync
		{name: "sync, bad serial", method: "POST", path: "/v1/cards/8986/sync", body: `{"challenge":"","begin_sync":"","list":""}`, want: 400, msg: "card serial"},
		{name: "sync, invalid JSON", method: "POST", path: card + "/sync", body: `{"challenge"`, want: 400, msg: "malformed JSON body"},
		{name: "sync, unknown field", method: "POST", path: card + "/sync", body: `{"challenge":"","begin_sync":"","list":"","status":{}}`, want: 400, msg: `unknown field "status"`},
		{name: "sync, challenge not hex", method: "POST", path: card + "/sync", body: `{"challenge":"zz0102030405060708090a0b0c0d0e0f","begin_sync":"e400","list":""}`, want: 400, msg: "challenge: want 16 bytes in hex"},
		{name: "sync, challenge too short", method: "POST", path: card + "/sync", body: `{"challenge":"0001","begin_sync":"e400","list":""}`, want: 400, msg: "challenge: want 16 bytes in hex"},
		{name: "sync, begin_sync not hex", method: "POST", path: card + "/sync", body: `{"challenge":"000102030405060708090a0b0c0d0e0f","begin_sync":"e4g0","list":""}`, want: 400, msg: "begin_sync: not hex"},
		{name: "sync, odd hex", method: "POST", path: card + "/sync", body: `{"challenge":"000102030405060708090a0b0c0d0e0f","begin_sync":"e40","list":""}`, want: 400, msg: "begin_sync: not hex"},
		{name: "sync, list not hex", method: "POST", path: card + "/sync", body: `{"challenge":"000102030405060708090a0b0c0d0e0f","begin_sync":"e400","list":"xx"}`, want: 400, msg: "list: not hex"},
		{name: "sync, begin_sync malformed", method: "POST", path: card + "/sync", body: `{"challenge":"000102030405060708090a0b0c0d0e0f","begin_sync":"e400","list":""}`, want: 400, msg: "begin_sync"},
		{name: "sync, exchange ID not hex", method: "POST", path: card + "/sync", body: `{"challenge":"000102030405060708090a0b0c0d0e0f","begin_sync":"e400","list":"","exchange":{"give":"zz","take":"00"}}`, want: 400, msg: "malformed JSON body"},
		{name: "sync, challenge a number", method: "POST", path: card + "/sync", body: `{"challenge":1,"begin_sync":"e400","list":""}`, want: 400, msg: "malformed JSON body"},
		{name: "sync as text", method: "POST", path: card + "/sync", contentType: "text/plain", body: `{}`, want: 415, msg: "send application/json"},
		{name: "sync over the body limit", method: "POST", path: card + "/sync", body: `{"list":"` + strings.Repeat("00", 1<<19) + `"}`, want: 413, msg: "request body over"},
		{name: "sync, another card's answer", method: "POST", prepare: func(t *testing.T, fs *fuzzServer) (string, []byte) {
			_, body := syncWith(0, nil, nil)(t, fs)
			return "/v1/cards/" + fs.other.String() + "/sync", body
		}, want: 400, msg: "answer, not"},
		{name: "sync, MAC wrong", method: "POST", prepare: syncWith(0, nil, func(r *api.SyncRequest) {
			b, _ := hex.DecodeString(r.BeginSync)
			b[len(b)-1] ^= 1
			r.BeginSync = hex.EncodeToString(b)
		}), want: 403, msg: "does not authenticate"},
		{name: "sync, challenge not given", method: "POST", prepare: syncWith(0, nil, func(r *api.SyncRequest) {
			r.Challenge = strings.Repeat("00", 16)
		}), want: 403, msg: "does not authenticate"},
		{name: "sync, card key not a key", method: "POST", prepare: syncWith(syncBadKey, nil, nil), want: 400, msg: "card public key"},
		{name: "sync, replayed epoch", method: "POST", prepare: syncWith(syncReplay, nil, nil), want: 409, msg: "not after the last accepted"},
		{name: "sync, LIST not the digest's", method: "POST", prepare: syncWith(syncBadList, []byte{0, 0, 0, 0}, nil), want: 409, msg: "start the sync over"},
		{name: "sync, exchange of a ticket not on the card", method: "POST", prepare: syncWith(syncExchange, nil, nil), want: 422, msg: "exchange refused"},

		// GET /v1/cards/{serial}/events
		{name: "events without a token", method: "GET", path: card + "/events?wait=0", want: 401, msg: "session won by the card"},
		{name: "events, another card's session", method: "GET", path: "/v1/cards/" + fs.other.String() + "/events?wait=0", token: "session", want: 403, msg: "another card"},
		{name: "events, negative wait", method: "GET", path: card + "/events?wait=-1", token: "session", want: 400, msg: "whole number of seconds"},
		{name: "events, wait not a number", method: "GET", path: card + "/events?wait=soon", token: "session", want: 400, msg: "whole number of seconds"},
		{name: "events, huge wait", method: "GET", path: card + "/events?wait=99999999999999999999", token: "session", want: 400, msg: "whole number of seconds"},
		{name: "events, bad serial", method: "GET", path: "/v1/cards/0/events", token: "session", want: 400, msg: "card serial"},

		// POST /v1/gate/journal and GET /v1/gate/deny
		{name: "journal without a token", method: "POST", path: "/v1/gate/journal", body: journal(func(*api.JournalRecord) {}), want: 401, msg: "gate token"},
		{name: "journal with the operator token", method: "POST", path: "/v1/gate/journal", token: "op", body: journal(func(*api.JournalRecord) {}), want: 401, msg: "gate token"},
		{name: "journal, gate ID not hex", method: "POST", path: "/v1/gate/journal", token: "gate", body: journal(func(r *api.JournalRecord) { r.GateID = "GATE" }), want: 400, msg: "gate_id: want 4 bytes in hex"},
		{name: "journal, nonce too short", method: "POST", path: "/v1/gate/journal", token: "gate", body: journal(func(r *api.JournalRecord) { r.Nonce = "00" }), want: 400, msg: "nonce: want 16 bytes in hex"},
		{name: "journal, receipt too long", method: "POST", path: "/v1/gate/journal", token: "gate", body: journal(func(r *api.JournalRecord) { r.Receipt += "00" }), want: 400, msg: "receipt: want 64 bytes in hex"},
		{name: "journal, no such time", method: "POST", path: "/v1/gate/journal", token: "gate", body: journal(func(r *api.JournalRecord) { r.Time = "2026-02-30T19:00:00" }), want: 400, msg: "check time"},
		{name: "journal, time in another form", method: "POST", path: "/v1/gate/journal", token: "gate", body: journal(func(r *api.JournalRecord) { r.Time = "2026-12-05 19:00" }), want: 400, msg: "want YYYY-MM-DDThh:mm:ss"},
		{name: "journal, ticket ID short", method: "POST", path: "/v1/gate/journal", token: "gate", body: strings.Replace(journal(func(*api.JournalRecord) {}), fs.checked.String(), "00", 1), want: 400, msg: "ticket ID"},
		{name: "journal, unknown field", method: "POST", path: "/v1/gate/journal", token: "gate", body: `{"checks":[],"gate":"G"}`, want: 400, msg: `unknown field "gate"`},
		{name: "journal of 1001 records", method: "POST", path: "/v1/gate/journal", token: "gate", body: `{"checks":[` + strings.TrimSuffix(strings.Repeat(`{},`, 1001), ",") + `]}`, want: 400, msg: "at most 1000 records"},
		{name: "journal as text", method: "POST", path: "/v1/gate/journal", token: "gate", contentType: "text/plain", body: `{"checks":[]}`, want: 415, msg: "send application/json"},
		{name: "journal over the body limit", method: "POST", path: "/v1/gate/journal", token: "gate", body: huge, want: 413, msg: "request body over"},
		{name: "deny without a token", method: "GET", path: "/v1/gate/deny", want: 401, msg: "gate token"},
		{name: "deny with the operator token", method: "GET", path: "/v1/gate/deny", token: "op", want: 401, msg: "gate token"},
		{name: "deny, POST", method: "POST", path: "/v1/gate/deny", token: "gate", want: 405, msg: "this endpoint takes"},

		// The rest
		{name: "rotate without a token", method: "POST", path: "/v1/issuer-keys/rotate", want: 401, msg: "operator token"},
		{name: "rotate with the gate token", method: "POST", path: "/v1/issuer-keys/rotate", token: "gate", want: 401, msg: "operator token"},
		{name: "issuer keys, PUT", method: "PUT", path: "/v1/issuer-keys", token: "op", body: `{}`, want: 405, msg: "this endpoint takes"},
		{name: "health, DELETE", method: "DELETE", path: "/healthz", want: 405, msg: "this endpoint takes"},
		{name: "unknown path", method: "GET", path: "/v2/orders", token: "op", want: 404, msg: "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, body := tc.path, []byte(tc.body)
			if tc.prepare != nil {
				path, body = tc.prepare(t, fs)
			}
			req, err := http.NewRequest(tc.method, hs.URL+path, bytes.NewReader(body))
			require.NoError(t, err)
			switch {
			case tc.contentType != "":
				req.Header.Set("Content-Type", tc.contentType)
			case len(body) > 0:
				req.Header.Set("Content-Type", "application/json")
			}
			if tok := fs.credential(tc.token); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			for k, v := range tc.header {
				req.Header[k] = []string{v}
			}
			before := fs.dump(t)
			resp, err := hs.Client().Do(req)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, tc.want, resp.StatusCode, "%s", got)
			checkAnswer(t, tc.method+" "+path, resp.StatusCode, resp.Header, got)
			var ea api.ErrorAnswer
			require.NoError(t, json.Unmarshal(got, &ea))
			assert.Contains(t, ea.Error, tc.msg)
			assert.Equal(t, before, fs.dump(t), "a refused request changes nothing")
		})
	}
}

// credential turns a badRequest's token into the bearer token to send.
func (fs *fuzzServer) credential(token string) string {
	switch token {
	case "op":
		return fs.keys.OperatorToken()
	case "gate":
		return fs.keys.GateToken()
	case "session":
		return fs.session
	case "tampered-session":
		b := []byte(fs.session)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	return token
}

// TestOrderSentTwiceAtOnce: an order sent again while the first is under
// way (a client retrying after a timeout) is a replay of the first, and
// another order under the same key is refused with 422, on SQLite and on
// PostgreSQL (which runs the two transactions side by side): never a 500.
func TestOrderSentTwiceAtOnce(t *testing.T) {
	ctx := context.Background()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			keys, err := issuer.Open(ctx, dir, "")
			require.NoError(t, err)
			t.Cleanup(func() { _ = keys.Close() })
			var st store.Store
			if backend == "sqlite" {
				s, err := sqlite.Open(ctx, filepath.Join(dir, "simtix.db"))
				require.NoError(t, err)
				t.Cleanup(func() { _ = s.Close() })
				st = s
			} else {
				st = pgCluster.Open(t)
			}
			srv, err := server.New(server.Config{Store: st, Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(t, err)
			t.Cleanup(func() { _ = srv.Close() })
			const rounds, senders = 8, 4
			for round := range rounds {
				key := fmt.Sprintf("twice-%d", round)
				codes := make([]int, senders)
				answers := make([]api.OrderAnswer, senders)
				bodies := make([][]byte, senders)
				for i := range senders {
					// Two different orders under one key.
					bodies[i], err = json.Marshal(fuzzOrder(t, "89860012345678901234", key, 3+i%2))
					require.NoError(t, err)
				}
				var wg sync.WaitGroup
				for i := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := httptest.NewRequest(http.MethodPost, "/v1/orders", bytes.NewReader(bodies[i]))
						r.Header.Set("Authorization", "Bearer "+keys.OperatorToken())
						rec := httptest.NewRecorder()
						srv.Handler().ServeHTTP(rec, r)
						codes[i] = rec.Code
						_ = json.Unmarshal(rec.Body.Bytes(), &answers[i])
					}()
				}
				wg.Wait()
				created := 0
				for i, code := range codes {
					switch code {
					case http.StatusCreated:
						created++
					case http.StatusOK, http.StatusUnprocessableEntity:
					default:
						t.Fatalf("round %d, sender %d: %d", round, i, code)
					}
				}
				require.Equal(t, 1, created, "round %d: one order issued its tickets: %v", round, codes)
				for i := range senders {
					if codes[i] == http.StatusOK {
						require.True(t, answers[i].Replayed)
					}
				}
			}
			var n map[box.State]int
			require.NoError(t, st.View(ctx, func(tx store.Tx) error {
				n, err = tx.CountTickets(ctx)
				return err
			}))
			total := 0
			for _, c := range n {
				total += c
			}
			require.LessOrEqual(t, total, rounds*4, "no order issued twice")
			require.GreaterOrEqual(t, total, rounds*3)
		})
	}
}
