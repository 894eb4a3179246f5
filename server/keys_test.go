package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/ticketfmt"
)

// newKeysEnv is newEnv with the issuer key spec given, and the server's
// keys wrapped by wrap (when not nil). It returns the data directory too.
func newKeysEnv(t *testing.T, spec string, wrap func(*issuer.Keys) server.Keys) (*env, string) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := issuer.Open(ctx, dir, spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = keys.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(dir, "simtix.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	var sk server.Keys = keys
	if wrap != nil {
		sk = wrap(keys)
	}
	srv, err := server.New(server.Config{Store: st, Keys: sk, MaxWait: 5 * time.Second})
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(ctx))
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	e := &env{t: t, keys: keys, store: st, srv: srv, router: router}
	e.http = httptest.NewServer(http.HandlerFunc(e.checked))
	t.Cleanup(e.http.Close)
	return e, dir
}

// fileKeySet reads the data directory's issuer-keys.pem.
func fileKeySet(t *testing.T, dir string) *ticketfmt.KeySet {
	b, err := os.ReadFile(filepath.Join(dir, issuer.KeySetFile))
	require.NoError(t, err)
	ks, err := ticketfmt.ParseKeySetPEM(b)
	require.NoError(t, err)
	return ks
}

// orderOne orders one corpus ticket and returns it, decoded.
func orderOne(t *testing.T, e *env, serial ticketfmt.Serial, key string) *ticketfmt.Ticket {
	ans, err := e.client(e.keys.OperatorToken()).Order(context.Background(), corpusOrder(t, serial.String(), key, 0, 1))
	require.NoError(t, err)
	require.Len(t, ans.Tickets, 1)
	raw, err := hex.DecodeString(ans.Tickets[0].Ticket)
	require.NoError(t, err)
	tk, err := ticketfmt.Unmarshal(raw)
	require.NoError(t, err)
	return tk
}

// certify syncs a new card and returns its certificate.
func certify(t *testing.T, e *env, serialHex string) (*ticketfmt.Certificate, ticketfmt.Serial) {
	ctx := context.Background()
	card, serial := e.newCard(serialHex)
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: e.client("")}
	_, err := h.Sync(ctx, nil)
	require.NoError(t, err)
	fci, err := hostlib.NewApplet(card.Port(applet.Contactless), hostlib.ClientOptions{}).Select(ctx)
	require.NoError(t, err)
	require.NotNil(t, fci.Certificate)
	cert, err := ticketfmt.UnmarshalCertificate(fci.Certificate)
	require.NoError(t, err)
	return cert, serial
}

func TestRotateIssuerKey(t *testing.T) {
	ctx := context.Background()
	e, dir := newKeysEnv(t, "", nil)
	cert1, serial := certify(t, e, "89860012345678901234")
	t1 := orderOne(t, e, serial, "before")
	key1 := t1.KeyID
	assert.Equal(t, key1, cert1.KeyID)
	oldSet := fileKeySet(t, dir)

	// Operators only.
	_, err := e.client("").RotateIssuerKey(ctx)
	assertStatus(t, err, http.StatusUnauthorized)
	_, err = e.client(e.keys.GateToken()).RotateIssuerKey(ctx)
	assertStatus(t, err, http.StatusUnauthorized)

	rot, err := e.client(e.keys.OperatorToken()).RotateIssuerKey(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, key1, rot.Current)
	assert.ElementsMatch(t, []ticketfmt.KeyID{key1, rot.Current}, rot.Keys)
	answered, err := ticketfmt.ParseKeySetPEM([]byte(rot.PEM))
	require.NoError(t, err)
	assert.Equal(t, rot.Keys, answered.IDs())

	// What is signed from now on carries the new key; what was signed
	// before still verifies, with the served keys and with the file.
	t2 := orderOne(t, e, serial, "after")
	assert.Equal(t, rot.Current, t2.KeyID)
	cert2, _ := certify(t, e, "89860012345678905678")
	assert.Equal(t, rot.Current, cert2.KeyID)
	served, err := e.client("").IssuerKeys(ctx)
	require.NoError(t, err)
	for name, ks := range map[string]*ticketfmt.KeySet{"served": served, "file": fileKeySet(t, dir), "answered": answered} {
		assert.NoError(t, t1.Verify(ks), name)
		assert.NoError(t, t2.Verify(ks), name)
		assert.NoError(t, cert1.Verify(ks), name)
		assert.NoError(t, cert2.Verify(ks), name)
	}
	assert.ErrorIs(t, t2.Verify(oldSet), ticketfmt.ErrUnknownKey, "the old key set does not know the new key")

	// Rotating again is harmless: every key stays trusted.
	rot2, err := e.client(e.keys.OperatorToken()).RotateIssuerKey(ctx)
	require.NoError(t, err)
	assert.Len(t, rot2.Keys, 3)
	assert.NoError(t, t1.Verify(fileKeySet(t, dir)))
	assert.Equal(t, rot2.Current, orderOne(t, e, serial, "later").KeyID)
}

// noRotate hides the Rotate method of its keys.
type noRotate struct{ server.Keys }

func TestRotateRefused(t *testing.T) {
	ctx := context.Background()

	// A key file the operator gave: 409, nothing changed.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "operator-key.pem")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	e, dir := newKeysEnv(t, keyFile, nil)
	before := fileKeySet(t, dir).IDs()
	_, err = e.client(e.keys.OperatorToken()).RotateIssuerKey(ctx)
	assertStatus(t, err, http.StatusConflict)
	assert.ErrorContains(t, err, "cannot rotate an issuer key file given by the operator")
	assert.Equal(t, before, fileKeySet(t, dir).IDs())
	assert.Equal(t, before, e.keys.KeySet().IDs())

	// Keys that cannot rotate at all: 409.
	e, _ = newKeysEnv(t, "", func(k *issuer.Keys) server.Keys { return noRotate{k} })
	_, err = e.client(e.keys.OperatorToken()).RotateIssuerKey(ctx)
	assertStatus(t, err, http.StatusConflict)
	assert.ErrorContains(t, err, "cannot be rotated")

	// Keys closed (the server is stopping): 503.
	e, _ = newKeysEnv(t, "", nil)
	require.NoError(t, e.keys.Close())
	_, err = e.client(e.keys.OperatorToken()).RotateIssuerKey(ctx)
	assertStatus(t, err, http.StatusServiceUnavailable)
}

// TestARotationMidOrder retires the key an order's transaction got, just
// before it signs: the transaction runs again with the new key, and the
// order succeeds.
func TestARotationMidOrder(t *testing.T) {
	ctx := context.Background()
	rotations := 0
	e, _ := newKeysEnv(t, "", func(k *issuer.Keys) server.Keys {
		return &rotatingKeys{Keys: k, hook: func() {
			if rotations == 0 {
				rotations++
				_, err := k.Rotate(ctx)
				require.NoError(t, err)
			}
		}}
	})
	op := e.client(e.keys.OperatorToken())
	before, err := e.client("").IssuerKeys(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, before.Len())
	ans, err := op.Order(ctx, corpusOrder(t, "89860012345678901234", "mid", 0, 1))
	require.NoError(t, err)
	assert.Equal(t, 1, rotations)
	raw, err := hex.DecodeString(ans.Tickets[0].Ticket)
	require.NoError(t, err)
	tk, err := ticketfmt.Unmarshal(raw)
	require.NoError(t, err)
	keys, err := e.client("").IssuerKeys(ctx)
	require.NoError(t, err)
	assert.NoError(t, tk.Verify(keys))
	assert.Equal(t, 2, keys.Len())
	assert.NotEqual(t, before.IDs()[0], tk.KeyID, "signed with the new key")
}

// rotatingKeys calls hook before each signature, with the signer already
// taken.
type rotatingKeys struct {
	*issuer.Keys
	hook func()
}

func (k *rotatingKeys) Signer() crypto.Signer { return hookedSigner{k.Keys.Signer(), k.hook} }

type hookedSigner struct {
	crypto.Signer
	hook func()
}

func (s hookedSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.hook()
	return s.Signer.Sign(r, digest, opts)
}

// TestOrdersDuringRotations orders while the key rotates: every order
// succeeds (a transaction whose key was retired runs again) and every
// ticket verifies with the key set.
func TestOrdersDuringRotations(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	op := e.client(e.keys.OperatorToken())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			_, err := op.RotateIssuerKey(ctx)
			assert.NoError(t, err)
		}
	}()
	var answers []api.OrderAnswer
	for i := 0; i < 20; i++ {
		ans, err := op.Order(ctx, corpusOrder(t, "89860012345678901234", fmt.Sprintf("rot-%d", i), i, 1))
		require.NoError(t, err)
		answers = append(answers, ans)
	}
	<-done
	keys, err := e.client("").IssuerKeys(ctx)
	require.NoError(t, err)
	for _, ans := range answers {
		raw, err := hex.DecodeString(ans.Tickets[0].Ticket)
		require.NoError(t, err)
		tk, err := ticketfmt.Unmarshal(raw)
		require.NoError(t, err)
		assert.NoError(t, tk.Verify(keys))
	}
}
