package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/ticketfmt"
)

// orderHall orders one ticket of Simtix Hall on date and returns it as hex.
func (r *roles) orderHall(date, key string) string {
	ans := r.order("--seller", "Simtix Hall", "--date", date, "--time", "19:30", "--price", "100", "--idempotency-key", key)
	require.Len(r.t, ans.Tickets, 1)
	return ans.Tickets[0].Ticket
}

// verifiedBy runs `ticket explain --issuer-keys DATA_DIR/issuer-keys.pem`
// and returns the key that verified the ticket or certificate.
func (r *roles) verifiedBy(hexTicket string) ticketfmt.KeyID {
	out := simtixOK(r.t, "ticket", "explain", "--issuer-keys", r.srv.File(issuer.KeySetFile), "--json", hexTicket)
	doc := decodeJSON[struct {
		Fields   []ticketfmt.FieldInfo `json:"fields"`
		Verified string                `json:"verified"`
	}](r.t, out)
	idHex, ok := strings.CutPrefix(doc.Verified, "signature verified with issuer key ")
	require.True(r.t, ok, doc.Verified)
	id, err := ticketfmt.ParseKeyID(idHex)
	require.NoError(r.t, err)
	return id
}

// listKeys runs `keys list --json` on the server (or its data dir).
func (r *roles) listKeys(where ...string) []ticketfmt.KeyID {
	if len(where) == 0 {
		where = []string{"--server", r.srv.URL}
	}
	doc := decodeJSON[keysListJSON](r.t, simtixOK(r.t, append([]string{"keys", "list", "--json"}, where...)...))
	return doc.Keys
}

func (r *roles) rotate() api.KeyRotation {
	return decodeJSON[api.KeyRotation](r.t, simtixOK(r.t, "keys", "rotate", "--server", r.srv.URL,
		"--token-file", r.srv.File(issuer.OperatorTokenFile), "--json"))
}

// restart stops the server and starts it again on its data dir.
func (r *roles) restart(serverArgs ...string) {
	require.Equal(r.t, exitOK, r.srv.Stop(), r.srv.Stderr.String())
	r.srv = startServer(r.t, r.srv.Dir, serverArgs...)
}

func TestKeysRotate(t *testing.T) {
	r := newRoles(t)
	t1 := r.orderHall("2026-12-12", "k1")
	key1 := r.verifiedBy(t1)
	assert.Equal(t, []ticketfmt.KeyID{key1}, r.listKeys())
	assert.Equal(t, []ticketfmt.KeyID{key1}, r.listKeys("--data-dir", r.srv.Dir))
	out := simtixOK(t, "keys", "list", "--data-dir", r.srv.Dir)
	assert.Contains(t, out, key1.String()+"\n1 issuer keys (from ")
	pemFile, err := os.ReadFile(r.srv.File(issuer.KeySetFile))
	require.NoError(t, err)
	assert.Equal(t, string(pemFile), simtixOK(t, "keys", "list", "--server", r.srv.URL, "--pem"))

	// A running server rotates: what it signs from now on carries the new
	// key, and what the old one signed still verifies with the new file.
	rot := r.rotate()
	assert.NotEqual(t, key1, rot.Current)
	assert.ElementsMatch(t, []ticketfmt.KeyID{key1, rot.Current}, rot.Keys)
	pemFile, err = os.ReadFile(r.srv.File(issuer.KeySetFile))
	require.NoError(t, err)
	assert.Equal(t, string(pemFile), rot.PEM, "issuer-keys.pem is rewritten")
	assert.Equal(t, rot.Current, r.verifiedBy(r.orderHall("2026-12-13", "k2")))
	assert.Equal(t, key1, r.verifiedBy(t1))
	assert.Equal(t, rot.Keys, r.listKeys())

	out = simtixOK(t, "keys", "rotate", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.OperatorTokenFile))
	assert.Regexp(t, `issuer key rotated: [0-9a-f]{8} is current\n3 issuer keys: .*\(current\)`, out)
	assert.Contains(t, out, "give gates the new key set")

	// Refusals: usage errors exit 2; a wrong token is the server's 401.
	token := r.srv.File(issuer.OperatorTokenFile)
	for _, args := range [][]string{
		{"keys", "rotate"},
		{"keys", "rotate", "--server", r.srv.URL, "--data-dir", r.srv.Dir},
		{"keys", "rotate", "--server", r.srv.URL},
		{"keys", "rotate", "--server", r.srv.URL, "--token-file", token, "--issuer-key", "tpm:sim"},
		{"keys", "rotate", "--data-dir", r.srv.Dir, "--token-file", token},
		{"keys", "rotate", "--server", "ftp://x", "--token-file", token},
		{"keys", "list"},
		{"keys", "list", "--server", r.srv.URL, "--data-dir", r.srv.Dir},
		{"keys", "list", "--server", r.srv.URL, "--json", "--pem"},
		{"keys", "list", "--server", r.srv.URL, "extra"},
	} {
		code, _, errOut := simtix(t, args...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
	}
	gateToken := r.srv.File(issuer.GateTokenFile)
	code, _, errOut := simtix(t, "keys", "rotate", "--server", r.srv.URL, "--token-file", gateToken)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "401")
	assert.Len(t, r.listKeys(), 3, "nothing rotated")

	// A stopped server's keys rotate in its data dir; restarted, it signs
	// with the new key.
	require.Equal(t, exitOK, r.srv.Stop())
	off := decodeJSON[api.KeyRotation](t, simtixOK(t, "keys", "rotate", "--data-dir", r.srv.Dir, "--json"))
	assert.Len(t, off.Keys, 4)
	assert.Contains(t, off.Keys, rot.Current)
	r.restart()
	assert.Equal(t, off.Current, r.verifiedBy(r.orderHall("2026-12-14", "k3")))
	assert.Equal(t, key1, r.verifiedBy(t1))
	assert.Equal(t, off.Keys, r.listKeys())

	// No data dir there: nothing is created.
	missing := filepath.Join(t.TempDir(), "typo")
	code, _, errOut = simtix(t, "keys", "rotate", "--data-dir", missing)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "check --data-dir")
	assert.NoDirExists(t, missing)
	code, _, _ = simtix(t, "keys", "list", "--data-dir", missing)
	assert.Equal(t, exitError, code)
}

// An issuer key the operator gave as a PEM file cannot be rotated, online
// or offline; restarting with another place for the key moves it there.
func TestKeysRotateOperatorFile(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "operator-key.pem")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	fileKey, err := ticketfmt.KeyIDOf(&k.PublicKey)
	require.NoError(t, err)

	r := newRoles(t, "--issuer-key", keyFile)
	assert.Equal(t, fileKey, r.verifiedBy(r.orderHall("2026-12-12", "f1")))
	code, _, errOut := simtix(t, "keys", "rotate", "--server", r.srv.URL, "--token-file", r.srv.File(issuer.OperatorTokenFile))
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "409")
	assert.Contains(t, errOut, "cannot rotate an issuer key file given by the operator")
	assert.Contains(t, errOut, "restart with --issuer-key NEWFILE")
	assert.Equal(t, []ticketfmt.KeyID{fileKey}, r.listKeys())

	require.Equal(t, exitOK, r.srv.Stop())
	code, _, errOut = simtix(t, "keys", "rotate", "--data-dir", r.srv.Dir, "--issuer-key", keyFile)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "cannot rotate")
	assert.Equal(t, []ticketfmt.KeyID{fileKey}, r.listKeys("--data-dir", r.srv.Dir))

	// Offline with the default place: the key moves into the data dir,
	// which is the rotation, and the command says so.
	code, out, errOut := simtix(t, "keys", "rotate", "--data-dir", r.srv.Dir, "--json")
	require.Equal(t, exitOK, code, errOut)
	rot := decodeJSON[api.KeyRotation](t, out)
	assert.NotEqual(t, fileKey, rot.Current)
	assert.ElementsMatch(t, []ticketfmt.KeyID{fileKey, rot.Current}, rot.Keys)
	assert.Contains(t, errOut, "was not in the data directory")
	assert.FileExists(t, r.srv.File("issuer-key.pem"))
	r.restart()
	assert.Equal(t, rot.Current, r.verifiedBy(r.orderHall("2026-12-13", "f2")))
}
