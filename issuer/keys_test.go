package issuer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/ticketfmt"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

// open opens the keys of dir with spec, closed at the end of the test.
func open(t testing.TB, dir, spec string) *issuer.Keys {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := issuer.Open(ctx, dir, spec)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, k.Close()) })
	return k
}

// ticket returns a ticket signed by k.
func ticket(t testing.TB, k *issuer.Keys, n byte) *ticketfmt.Ticket {
	t.Helper()
	tk := unsigned(n)
	require.NoError(t, tk.Sign(k.Signer()))
	return tk
}

// unsigned returns a ticket not signed yet.
func unsigned(n byte) *ticketfmt.Ticket {
	return &ticketfmt.Ticket{
		ID: ticketfmt.ID{9: n}, Type: 1, Seller: "Stade de Test",
		Date:  ticketfmt.DateOf(time.Date(2026, 7, 14, 0, 0, 0, 0, time.UTC)),
		Time:  ticketfmt.TimeOfDayOf(time.Date(0, 1, 1, 20, 30, 0, 0, time.UTC)),
		Price: 4500, Seat: "B12", Carrier: ticketfmt.Serial{0x89, 0x86, 0, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34},
	}
}

// keyID is the key ID of k's current key.
func keyID(t testing.TB, k *issuer.Keys) ticketfmt.KeyID {
	t.Helper()
	id, err := ticketfmt.KeyIDOf(k.Signer().Public())
	require.NoError(t, err)
	return id
}

// mode returns a file's permission bits.
func mode(t testing.TB, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// names lists a directory.
func names(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// pemKeySet parses the data directory's issuer-keys.pem.
func pemKeySet(t testing.TB, dir string) *ticketfmt.KeySet {
	t.Helper()
	assert.Equal(t, fs.FileMode(0o644), mode(t, filepath.Join(dir, "issuer-keys.pem")))
	b, err := os.ReadFile(filepath.Join(dir, "issuer-keys.pem"))
	require.NoError(t, err)
	s, err := ticketfmt.ParseKeySetPEM(b)
	require.NoError(t, err)
	return s
}

func TestFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "dir")
	k := open(t, dir, "")

	assert.Equal(t, fs.FileMode(0o700), mode(t, dir))
	assert.Equal(t, []string{"gate.token", "issuer-key.pem", "issuer-keys.json", "issuer-keys.pem",
		"master.key", "operator.token"}, names(t, dir), "no temporary file left")
	for _, f := range []string{"master.key", "operator.token", "gate.token", "issuer-key.pem"} {
		assert.Equal(t, fs.FileMode(0o600), mode(t, filepath.Join(dir, f)), f)
	}
	assert.Equal(t, fs.FileMode(0o644), mode(t, filepath.Join(dir, "issuer-keys.json")))

	// master.key: 64 hex digits, as simtix card new --master-key reads it.
	b, err := os.ReadFile(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	assert.Regexp(t, hex64, string(b))
	assert.Equal(t, string(b), hex.EncodeToString(k.Master())+"\n")
	assert.Len(t, k.Master(), 32)
	k.Master()[0] ^= 1
	assert.Equal(t, string(b), hex.EncodeToString(k.Master())+"\n", "Master returns a copy")

	for f, tok := range map[string]string{"operator.token": k.OperatorToken(), "gate.token": k.GateToken()} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.Regexp(t, hex64, string(b))
		assert.Equal(t, string(b), tok+"\n")
	}
	assert.NotEqual(t, k.OperatorToken(), k.GateToken())
	assert.NotEqual(t, k.OperatorToken(), hex.EncodeToString(k.Master()))

	pub, ok := k.Signer().Public().(*ecdsa.PublicKey)
	require.True(t, ok)
	assert.Equal(t, elliptic.P256(), pub.Curve)
	assert.Equal(t, []ticketfmt.KeyID{keyID(t, k)}, k.KeySet().IDs())
	assert.Equal(t, k.KeySet().IDs(), pemKeySet(t, dir).IDs())

	// The key file is the signer's key.
	priv := readKey(t, filepath.Join(dir, "issuer-key.pem"))
	assert.True(t, priv.PublicKey.Equal(pub))
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	k1 := open(t, dir, "")
	tk := ticket(t, k1, 1)
	before := names(t, dir)
	require.NoError(t, k1.Close())

	k2 := open(t, dir, "")
	assert.Equal(t, k1.Master(), k2.Master())
	assert.Equal(t, k1.OperatorToken(), k2.OperatorToken())
	assert.Equal(t, k1.GateToken(), k2.GateToken())
	assert.Equal(t, keyID(t, k1), keyID(t, k2))
	assert.Equal(t, k1.KeySet().IDs(), k2.KeySet().IDs())
	assert.NoError(t, tk.Verify(k2.KeySet()))
	assert.Equal(t, before, names(t, dir))
}

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "")
	tk := ticket(t, k, 1)
	assert.Equal(t, keyID(t, k), tk.KeyID)
	require.NoError(t, tk.Verify(k.KeySet()))
	require.NoError(t, tk.Verify(pemKeySet(t, dir)))
	tk.Price++
	assert.ErrorIs(t, tk.Verify(k.KeySet()), ticketfmt.ErrBadSignature)

	cardKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	cert := &ticketfmt.Certificate{Serial: ticketfmt.Serial{0x89, 0x86}, PublicKey: &cardKey.PublicKey}
	require.NoError(t, cert.Sign(k.Signer()))
	assert.NoError(t, cert.Verify(k.KeySet()))
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "")
	id1 := keyID(t, k)
	old := k.Signer()
	t1 := ticket(t, k, 1)

	id2, err := k.Rotate(context.Background())
	require.NoError(t, err)
	assert.NotEqual(t, id1, id2)
	assert.Equal(t, id2, keyID(t, k))
	assert.Equal(t, fs.FileMode(0o600), mode(t, filepath.Join(dir, "issuer-key-2.pem")))

	assert.NoError(t, t1.Verify(k.KeySet()), "a ticket of the retired key still verifies")
	t2 := ticket(t, k, 2)
	assert.Equal(t, id2, t2.KeyID)
	assert.NoError(t, t2.Verify(k.KeySet()))

	// A signer of the retired key refuses, rather than sign with a key ID
	// that names another key.
	assert.ErrorIs(t, unsigned(9).Sign(old), issuer.ErrRetired)

	both := sortIDs(id1, id2)
	assert.Equal(t, both, k.KeySet().IDs())
	ks := pemKeySet(t, dir)
	assert.Equal(t, both, ks.IDs())
	assert.NoError(t, t1.Verify(ks))
	assert.NoError(t, t2.Verify(ks))
	require.NoError(t, k.Close())

	k = open(t, dir, "")
	assert.Equal(t, id2, keyID(t, k), "the rotated key stays current")
	assert.Equal(t, both, k.KeySet().IDs())
	assert.NoError(t, t1.Verify(k.KeySet()))

	id3, err := k.Rotate(context.Background())
	require.NoError(t, err)
	assert.Equal(t, sortIDs(id1, id2, id3), pemKeySet(t, dir).IDs())
	assert.FileExists(t, filepath.Join(dir, "issuer-key-3.pem"))

	// A retired private key file is not needed any more.
	require.NoError(t, os.Remove(filepath.Join(dir, "issuer-key.pem")))
	require.NoError(t, k.Close())
	k = open(t, dir, "")
	assert.Equal(t, id3, keyID(t, k))
	assert.NoError(t, t1.Verify(k.KeySet()))
}

// A key file left by a rotation cut off before its record was written is
// adopted by the next rotation, not overwritten.
func TestRotateAdoptsOrphan(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "")
	orphan := writeKey(t, filepath.Join(dir, "issuer-key-2.pem"), newP256(t), "PRIVATE KEY")
	id, err := ticketfmt.KeyIDOf(&orphan.PublicKey)
	require.NoError(t, err)
	got, err := k.Rotate(context.Background())
	require.NoError(t, err)
	assert.Equal(t, id, got)
}

func TestAfterClose(t *testing.T) {
	k, err := issuer.Open(context.Background(), t.TempDir(), "")
	require.NoError(t, err)
	s := k.Signer()
	require.NoError(t, k.Close())
	assert.NoError(t, k.Close(), "closing twice is harmless")
	assert.ErrorIs(t, unsigned(9).Sign(s), issuer.ErrClosed)
	_, err = k.Rotate(context.Background())
	assert.ErrorIs(t, err, issuer.ErrClosed)
	assert.Len(t, k.Master(), 32)
}

func TestKeyFileSpec(t *testing.T) {
	for _, tc := range []struct{ name, blockType, prefix string }{
		{"pkcs8", "PRIVATE KEY", ""},
		{"sec1", "EC PRIVATE KEY", "file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(t.TempDir(), "issuer.pem")
			priv := writeKey(t, path, newP256(t), tc.blockType)
			k := open(t, dir, tc.prefix+path)
			assert.True(t, priv.PublicKey.Equal(k.Signer().Public()))
			assert.NoError(t, ticket(t, k, 1).Verify(pemKeySet(t, dir)))
			assert.NoFileExists(t, filepath.Join(dir, "issuer-key.pem"))

			_, err := k.Rotate(context.Background())
			assert.ErrorIs(t, err, issuer.ErrNoRotate)
			assert.ErrorContains(t, err, path)
		})
	}
}

// TestKeyFileMadeOnFirstStart: a key file given that does not exist yet is
// made (0600) and kept: the next start signs with the same key.
func TestKeyFileMadeOnFirstStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "issuer.pem")
	k := open(t, dir, path)
	first := k.Signer().Public()
	require.NoError(t, k.Close())
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	k = open(t, dir, path)
	assert.True(t, k.Signer().Public().(*ecdsa.PublicKey).Equal(first), "the same key at the next start")
	assert.NoError(t, ticket(t, k, 1).Verify(pemKeySet(t, dir)))
	assert.NoFileExists(t, filepath.Join(dir, "issuer-key.pem"))
}

// openssl ecparam -genkey writes an EC PARAMETERS block before the key.
func TestKeyFileWithECParameters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "issuer.pem")
	priv := newP256(t)
	der, err := x509.MarshalECPrivateKey(priv)
	require.NoError(t, err)
	data := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	k := open(t, t.TempDir(), path)
	assert.True(t, priv.PublicKey.Equal(k.Signer().Public()))
}

func TestKeyFileRefused(t *testing.T) {
	dir := t.TempDir()
	keys := t.TempDir()

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384File := filepath.Join(keys, "p384.pem")
	writeKey(t, p384File, p384, "EC PRIVATE KEY")

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	require.NoError(t, err)
	rsaFile := filepath.Join(keys, "rsa.pem")
	require.NoError(t, os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))

	certFile := filepath.Join(keys, "cert.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), 0o600))
	garbage := filepath.Join(keys, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a key\n"), 0o600))
	open := filepath.Join(keys, "open.pem")
	writeKey(t, open, newP256(t), "PRIVATE KEY")
	require.NoError(t, os.Chmod(open, 0o644))

	for _, tc := range []struct {
		spec string
		is   error
		msg  string
	}{
		{p384File, ticketfmt.ErrKeyType, "ECDSA P-384 key"},
		{rsaFile, ticketfmt.ErrKeyType, "RSA key"},
		{certFile, issuer.ErrMalformed, `"CERTIFICATE"`},
		{garbage, issuer.ErrMalformed, "no PEM private key"},
		{open, issuer.ErrPermissions, "chmod 600"},
		{filepath.Join(keys, "missing", "issuer.pem"), fs.ErrNotExist, "missing/issuer.pem"},
		{"file:", nil, "key file path"},
	} {
		_, err := issuer.Open(context.Background(), dir, tc.spec)
		require.Error(t, err, tc.spec)
		if tc.is != nil {
			assert.ErrorIs(t, err, tc.is, tc.spec)
		}
		assert.ErrorContains(t, err, tc.msg)
		assert.ErrorContains(t, err, tc.spec)
	}
	assert.NoFileExists(t, filepath.Join(dir, "issuer-key.pem"), "no key made in place of a refused one")
	assert.NoFileExists(t, filepath.Join(dir, "issuer-keys.json"))
}

// Changing the key spec makes its key current; the previous one is retired
// and never becomes current again.
func TestChangeSpec(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "")
	id1 := keyID(t, k)
	t1 := ticket(t, k, 1)
	require.NoError(t, k.Close())

	path := filepath.Join(t.TempDir(), "issuer.pem")
	writeKey(t, path, newP256(t), "PRIVATE KEY")
	k = open(t, dir, path)
	id2 := keyID(t, k)
	assert.NotEqual(t, id1, id2)
	assert.Equal(t, sortIDs(id1, id2), pemKeySet(t, dir).IDs())
	assert.NoError(t, t1.Verify(k.KeySet()))
	require.NoError(t, k.Close())

	// Same file again: nothing changes.
	k = open(t, dir, path)
	assert.Equal(t, id2, keyID(t, k))
	assert.Equal(t, 2, k.KeySet().Len())
	require.NoError(t, k.Close())

	// Back to the default: a new data key, not the retired issuer-key.pem.
	k = open(t, dir, "")
	id3 := keyID(t, k)
	assert.NotContains(t, []ticketfmt.KeyID{id1, id2}, id3)
	assert.FileExists(t, filepath.Join(dir, "issuer-key-2.pem"))
	assert.Equal(t, sortIDs(id1, id2, id3), pemKeySet(t, dir).IDs())
	require.NoError(t, k.Close())

	// The retired file key is refused.
	_, err := issuer.Open(context.Background(), dir, path)
	assert.ErrorIs(t, err, issuer.ErrRetired)
	_, err = issuer.Open(context.Background(), dir, filepath.Join(dir, "issuer-key.pem"))
	assert.ErrorIs(t, err, issuer.ErrRetired)
	// The current one, named by its path, is fine.
	k = open(t, dir, filepath.Join(dir, "issuer-key-2.pem"))
	assert.Equal(t, id3, keyID(t, k))
}

func TestMalformedSecrets(t *testing.T) {
	for _, tc := range []struct {
		file, content string
		msg           string
	}{
		{"master.key", "xyz\n", "64 hex digits"},
		{"master.key", "00112233\n", "64 hex digits"},
		{"master.key", "", "64 hex digits"},
		{"operator.token", "secret\n", "64 hex digits"},
		{"gate.token", "00112233445566778899aabbccddeeff\n00112233445566778899aabbccddeeff\n", "one line"},
		{"gate.token", "00112233445566778899aabbccddeeff 00112233445566778899aabbccddeeff\n", "one line"},
		{"issuer-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "issuer-key.pem"},
		{"issuer-keys.json", `{"version": 1, "keys": []}`, "no key"},
		{"issuer-keys.json", "{}", "version 0"},
		{"issuer-keys.json", "[", "issuer-keys.json"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dir := t.TempDir()
			k := open(t, dir, "")
			require.NoError(t, k.Close())
			path := filepath.Join(dir, tc.file)
			require.NoError(t, os.Remove(path))
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, err := issuer.Open(context.Background(), dir, "")
			assert.ErrorIs(t, err, issuer.ErrMalformed)
			assert.ErrorContains(t, err, path)
			assert.ErrorContains(t, err, tc.msg)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tc.content, string(b), "a refused file is left as it is")
		})
	}
}

// A record whose key ID does not match its public key is refused: the record
// says which keys gates trust.
func TestRecordTampered(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "")
	id := keyID(t, k)
	require.NoError(t, k.Close())
	path := filepath.Join(dir, "issuer-keys.json")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	other := id
	other[0] ^= 0xff
	b2 := regexp.MustCompile(id.String()).ReplaceAll(b, []byte(other.String()))
	require.NotEqual(t, b, b2)
	require.NoError(t, os.WriteFile(path, b2, 0o644))
	_, err = issuer.Open(context.Background(), dir, "")
	assert.ErrorIs(t, err, issuer.ErrMalformed)
	assert.ErrorContains(t, err, "does not match")
}

func TestMasterKeyWhitespace(t *testing.T) {
	dir := t.TempDir()
	master := "00112233 44556677 8899AABB ccddeeff\n00112233445566778899aabbccddeeff\n\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "master.key"), []byte(master), 0o600))
	k := open(t, dir, "")
	assert.Equal(t, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", hex.EncodeToString(k.Master()))
}

func TestPermissions(t *testing.T) {
	for _, tc := range []struct {
		file string
		mode fs.FileMode
	}{
		{"master.key", 0o644},
		{"master.key", 0o640},
		{"operator.token", 0o604},
		{"gate.token", 0o660},
		{"issuer-key.pem", 0o640},
		{"issuer-keys.json", 0o664},
		{".", 0o777},
		{".", 0o720},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dir := t.TempDir()
			k := open(t, dir, "")
			require.NoError(t, k.Close())
			path := filepath.Join(dir, tc.file)
			require.NoError(t, os.Chmod(path, tc.mode))
			_, err := issuer.Open(context.Background(), dir, "")
			assert.ErrorIs(t, err, issuer.ErrPermissions)
			assert.ErrorContains(t, err, filepath.Clean(path))
			assert.ErrorContains(t, err, "chmod")
		})
	}
	// Others may read the public files.
	dir := t.TempDir()
	require.NoError(t, open(t, dir, "").Close())
	require.NoError(t, os.Chmod(dir, 0o755))
	open(t, dir, "")
}

func TestBadSpec(t *testing.T) {
	_, err := issuer.Open(context.Background(), t.TempDir(), "tpm:")
	assert.ErrorContains(t, err, "tpm:sim")
	_, err = issuer.Open(context.Background(), "", "")
	assert.Error(t, err)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = issuer.Open(context.Background(), file, "")
	assert.ErrorContains(t, err, "not a directory")
}

// newP256 makes a P-256 key.
func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// writeKey writes an EC key to path as a PEM block of the given type (0600).
func writeKey(t testing.TB, path string, k *ecdsa.PrivateKey, blockType string) *ecdsa.PrivateKey {
	t.Helper()
	var der []byte
	var err error
	if blockType == "EC PRIVATE KEY" {
		der, err = x509.MarshalECPrivateKey(k)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(k)
	}
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600))
	return k
}

// readKey reads a PKCS#8 P-256 key file.
func readKey(t testing.TB, path string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block)
	require.Equal(t, "PRIVATE KEY", block.Type)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(t, err)
	return k.(*ecdsa.PrivateKey)
}

// sortIDs returns ids in ascending order, as KeySet.IDs does.
func sortIDs(ids ...ticketfmt.KeyID) []ticketfmt.KeyID {
	slices.SortFunc(ids, func(a, b ticketfmt.KeyID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

// A key placed at DATA_DIR/issuer-key.pem before the first start is used
// (as is one left by a first start cut off before the key record).
func TestPlacedKeyFile(t *testing.T) {
	dir := t.TempDir()
	priv := writeKey(t, filepath.Join(dir, "issuer-key.pem"), newP256(t), "EC PRIVATE KEY")
	k := open(t, dir, "")
	assert.True(t, priv.PublicKey.Equal(k.Signer().Public()))
}
