// Package server is the ticket center and virtual ticket box over HTTP
// (network.md): orders, the handset's sync, the gates' journals and deny
// list, the issuer's keys, health and metrics.
//
// It holds no ticket logic of its own (package box decides where tickets
// go) and no SQL (package store keeps them).
package server

import (
	"context"
	"crypto"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// Keys are the network side's keys and secrets (issuer.Keys).
type Keys interface {
	// Signer is the current issuer key.
	Signer() crypto.Signer
	// KeySet is every issuer key gates trust.
	KeySet() *ticketfmt.KeySet
	// Master is the master secret the card keys derive from.
	Master() []byte
	// OperatorToken and GateToken are the bearer tokens of operators and
	// gates.
	OperatorToken() string
	GateToken() string
}

// Config configures a Server.
type Config struct {
	Store store.Store
	Keys  Keys
	// Logger gets the box's disagreements and request errors (slog.Default
	// when nil).
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ChallengeTTL is how long a sync challenge stays valid (default 2 min).
	ChallengeTTL time.Duration
	// SessionTTL is how long a holder's session lasts (default 10 min).
	SessionTTL time.Duration
	// MaxWait bounds a long poll (default 30 s).
	MaxWait time.Duration
	// MaxBody bounds a request body (default 1 MiB).
	MaxBody int64
}

// Server is the HTTP API. Create it with New and end it with Close.
type Server struct {
	cfg        Config
	log        *slog.Logger
	mux        *http.ServeMux
	broker     *broker
	sessionKey []byte
	metrics    *metrics
}

// New returns a server over cfg's store and keys. If the store is shared
// by several server processes (a store.Notifier), it starts listening for
// the orders the others take, so that a handset watching this one hears of
// them; Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("server: a store and keys are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = 2 * time.Minute
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 10 * time.Minute
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	key, err := hkdf.Key(sha256.New, cfg.Keys.Master(), nil, "simtix/session", 32)
	if err != nil {
		return nil, fmt.Errorf("server: session key: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), broker: newBroker(cfg.Logger), sessionKey: key, metrics: newMetrics()}
	s.routes()
	if n, ok := cfg.Store.(store.Notifier); ok {
		s.broker.start(n)
	}
	return s, nil
}

// Close stops what New started in the background (the listener for other
// server processes' orders) and waits for it to end. It leaves the store
// open. Call it once the server no longer serves (after ListenAndServe
// returns, or the Handler's server has shut down); closing again does
// nothing.
func (s *Server) Close() error {
	s.broker.close()
	return nil
}

// route is one endpoint of the API.
type route struct {
	pattern string
	handler http.HandlerFunc
}

// Routes returns the API's method and path patterns (for the OpenAPI
// check).
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.table() {
		out = append(out, r.pattern)
	}
	return out
}

func (s *Server) table() []route {
	return []route{
		{"POST /v1/orders", s.operator(s.handleOrder)},
		{"GET /v1/carriers/{carrier}/tickets", s.operator(s.handleCarrierTickets)},
		{"PUT /v1/cards/{serial}/msisdn", s.operator(s.handleMSISDN)},
		{"GET /v1/cards/{serial}/tickets", s.handleCardTickets},
		{"POST /v1/cards/{serial}/challenge", s.handleChallenge},
		{"POST /v1/cards/{serial}/sync", s.handleSync},
		{"GET /v1/cards/{serial}/events", s.handleEvents},
		{"POST /v1/gate/journal", s.gate(s.handleJournal)},
		{"GET /v1/gate/deny", s.gate(s.handleDeny)},
		{"GET /v1/issuer-keys", s.handleIssuerKeys},
		{"POST /v1/issuer-keys/rotate", s.operator(s.handleRotate)},
		{"GET /healthz", s.handleHealth},
		{"GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP},
	}
}

func (s *Server) routes() {
	for _, r := range s.table() {
		s.mux.Handle(r.pattern, s.instrument(r.pattern, r.handler))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allowed := s.allowed(r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, "%s %s: this endpoint takes %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
}

// allowed returns the methods the endpoint at r's path takes (none when
// there is no such endpoint).
func (s *Server) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			out = append(out, m)
		}
	}
	return out
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// ListenAndServe serves on addr until ctx is done, then shuts down
// gracefully (requests under way may finish within 10 s). ready, if not nil,
// receives the listening address.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.MaxWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}

// metrics are the Prometheus metrics.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	tickets  *prometheus.CounterVec
	syncs    *prometheus.CounterVec
	watching prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "simtix_http_requests_total",
			Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "simtix_http_request_seconds",
			Help: "HTTP request latency by endpoint.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"endpoint"}),
		tickets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "simtix_tickets_issued_total",
			Help: "Tickets issued, by route (card or box)."}, []string{"route"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "simtix_syncs_total",
			Help: "Accepted syncs, by kind (plan or final)."}, []string{"kind"}),
		watching: prometheus.NewGauge(prometheus.GaugeOpts{Name: "simtix_watching_handsets",
			Help: "Events long polls waiting for tickets to become due to their card."}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.tickets, m.syncs, m.watching,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) instrument(endpoint string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBody)
		h.ServeHTTP(rec, r)
		s.metrics.requests.WithLabelValues(endpoint, fmt.Sprint(rec.code)).Inc()
		s.metrics.latency.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	})
}

// apiError is an error with its HTTP status.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, api.ErrorAnswer{Error: fmt.Sprintf(format, args...)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers err: its own status for an apiError, 4xx for the store's
// expected errors, 500 (logged, with no detail) for the rest.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.code, "%s", ae.msg)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request body over %d bytes", mbe.Limit)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "request cancelled")
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// decode reads a JSON body strictly: one document, known fields only.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "content type %q: send application/json", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "malformed JSON body: more than one document")
	}
	return nil
}

// bearer returns the request's bearer token. The scheme name is
// case-insensitive (RFC 9110, section 11.1).
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func tokenEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (s *Server) operator(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !tokenEqual(bearer(r), s.cfg.Keys.OperatorToken()) {
			writeError(w, http.StatusUnauthorized, "an operator token is required (Authorization: Bearer, DATA_DIR/operator.token)")
			return
		}
		h(w, r)
	}
}

func (s *Server) gate(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !tokenEqual(bearer(r), s.cfg.Keys.GateToken()) {
			writeError(w, http.StatusUnauthorized, "a gate token is required (Authorization: Bearer, DATA_DIR/gate.token)")
			return
		}
		h(w, r)
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	// One indexed lookup: the database answers, whatever its size (a
	// count of the tickets took 90 ms at a million).
	err := s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		_, err := tx.Card(r.Context(), ticketfmt.Serial{})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "database: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleIssuerKeys(w http.ResponseWriter, _ *http.Request) {
	pem, err := s.cfg.Keys.KeySet().MarshalPEM()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "issuer keys: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(pem)
}

func parseSerial(r *http.Request) (ticketfmt.Serial, error) {
	s, err := ticketfmt.ParseSerial(r.PathValue("serial"))
	if err != nil {
		return s, errorf(http.StatusBadRequest, "%v", err)
	}
	return s, nil
}
