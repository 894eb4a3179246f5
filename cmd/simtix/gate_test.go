package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/issuer"
)

// TestGateStartFailureLeavesNoJournal starts gates that cannot reach their
// card or reader: each fails, exit 1, and leaves no journal behind. The
// reader is one PC/SC does not know, whether pcscd runs or not; the gate
// that serves card after card (no --once) must find that out before it
// makes its journal.
func TestGateStartFailureLeavesNoJournal(t *testing.T) {
	_, keyFile := vectorKeyFile(t)

	for _, tc := range []struct {
		name string
		card []string
	}{
		{"a reader PC/SC does not know, card after card", []string{"--reader", "No Such Reader 99 00"}},
		{"a reader PC/SC does not know, once", []string{"--reader", "No Such Reader 99 00", "--once"}},
		{"no card image", []string{"--image", filepath.Join(t.TempDir(), "missing.img")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out, errOut lockedBuffer
			args := append([]string{"gate", "--issuer-keys", keyFile, "--venue", "Simtix Hall",
				"--journal", filepath.Join(dir, "gate.journal")}, tc.card...)
			code := run(ctx, args, &out, &errOut)
			require.NoError(t, ctx.Err(), "the gate gave up at once")
			assert.Equal(t, exitError, code, errOut.String())
			assert.Empty(t, out.String())
			assert.Contains(t, errOut.String(), "simtix: ")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "a failed start leaves no journal behind: %s", errOut.String())
		})
	}
}

// TestGateDenyListWhenUploadFails runs a gate whose journal upload the
// server refuses: the gate still downloads the deny list, and refuses a
// ticket that another gate checked (a cloned card).
func TestGateDenyListWhenUploadFails(t *testing.T) {
	r := newRoles(t)
	hall := r.order("--seller", "Simtix Hall", "--date", "2026-12-12", "--time", "19:30", "--idempotency-key", "deny-hall")
	r.order("--seller", "Other Hall", "--date", "2026-12-12", "--time", "19:30", "--idempotency-key", "deny-other")
	s := r.sync()
	require.Equal(t, 2, s.Stored)
	// The clone: the card as it is now, both tickets unchecked.
	clone := filepath.Join(t.TempDir(), "clone.img")
	b, err := os.ReadFile(r.image)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(clone, b, 0o600))

	// Gate 1 checks the Other Hall ticket offline: its journal has a
	// record to upload.
	journal1 := filepath.Join(t.TempDir(), "gate1.journal")
	code, _, errOut := r.gate(journal1, "--venue", "Other Hall")
	require.Equal(t, exitOK, code, errOut)
	// Gate 2 checks the Simtix Hall ticket online: the server's deny list
	// names it.
	token := r.srv.File(issuer.GateTokenFile)
	code, _, errOut = r.gate(filepath.Join(t.TempDir(), "gate2.journal"), "--venue", "Simtix Hall", "--gate-id", "00000002",
		"--server", r.srv.URL, "--token-file", token)
	require.Equal(t, exitOK, code, errOut)

	// Gate 1, online through a server that refuses its journal, checks
	// the clone's Simtix Hall ticket: on the deny list, refused.
	target, err := url.Parse(r.srv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && req.URL.Path == "/v1/gate/journal" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"refused by the test"}`))
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	defer refusing.Close()
	code, out, errOut := simtix(t, "gate", "--image", clone, "--issuer-keys", r.srv.File(issuer.KeySetFile),
		"--journal", journal1, "--now", "2026-12-12T19:00:00Z", "--timezone", "UTC", "--once", "--json",
		"--venue", "Simtix Hall", "--server", refusing.URL, "--token-file", token)
	assert.Equal(t, exitRefused, code, "%s%s", errOut, out)
	verdict := decodeJSON[gateJSON](t, out)
	assert.False(t, verdict.Accepted)
	assert.Contains(t, verdict.Reason, "deny list")
	require.NotNil(t, verdict.Ticket)
	assert.Equal(t, hall.Tickets[0].ID, verdict.Ticket.ID)
	assert.Contains(t, errOut, "journal upload failed, kept for later")
	assert.Contains(t, errOut, "400")
	assert.NotContains(t, errOut, "deny list download failed")
}
