package issuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/issuer"
)

// The simulator is one per process: these tests must not run in parallel,
// and each closes its Keys (open registers the Close).

func TestTPMSim(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "tpm:sim")
	assert.Equal(t, fs.FileMode(0o600), mode(t, filepath.Join(dir, "tpm-sim.seed")))
	assert.NoFileExists(t, filepath.Join(dir, "issuer-key.pem"), "the key is in the TPM")
	pub, ok := k.Signer().Public().(*ecdsa.PublicKey)
	require.True(t, ok)
	assert.Equal(t, elliptic.P256(), pub.Curve)

	// The TPM signer returns ASN.1 DER; ticketfmt converts it.
	digest := sha256.Sum256([]byte("hello"))
	der, err := k.Signer().Sign(rand.Reader, digest[:], crypto.SHA256)
	require.NoError(t, err)
	assert.True(t, ecdsa.VerifyASN1(pub, digest[:], der))

	t1 := ticket(t, k, 1)
	require.NoError(t, t1.Verify(k.KeySet()))
	require.NoError(t, t1.Verify(pemKeySet(t, dir)))
	id1 := keyID(t, k)
	require.NoError(t, k.Close())

	// Close and Open: the same key, derived again from the seed.
	k = open(t, dir, "tpm:sim")
	assert.True(t, pub.Equal(k.Signer().Public()))
	assert.NoError(t, ticket(t, k, 2).Verify(k.KeySet()))

	// Rotation in the TPM.
	old := k.Signer()
	id2, err := k.Rotate(context.Background())
	require.NoError(t, err)
	assert.NotEqual(t, id1, id2)
	assert.ErrorIs(t, unsigned(3).Sign(old), issuer.ErrRetired)
	t3 := ticket(t, k, 3)
	assert.Equal(t, id2, t3.KeyID)
	assert.NoError(t, t1.Verify(k.KeySet()))
	assert.NoError(t, t3.Verify(k.KeySet()))
	assert.Equal(t, sortIDs(id1, id2), pemKeySet(t, dir).IDs())
	require.NoError(t, k.Close())

	k = open(t, dir, "tpm:sim")
	assert.Equal(t, id2, keyID(t, k))
	assert.Equal(t, sortIDs(id1, id2), k.KeySet().IDs())
	assert.NoError(t, ticket(t, k, 4).Verify(pemKeySet(t, dir)))
	require.NoError(t, k.Close())
	assert.ErrorIs(t, unsigned(5).Sign(k.Signer()), issuer.ErrClosed)
}

// Another data directory has another seed, hence other keys.
func TestTPMSimSeedPerDataDir(t *testing.T) {
	k1 := open(t, t.TempDir(), "tpm:sim")
	id1 := keyID(t, k1)
	require.NoError(t, k1.Close())
	k2 := open(t, t.TempDir(), "tpm:sim")
	assert.NotEqual(t, id1, keyID(t, k2))
}

// A TPM whose owner seed changed (cleared, or another TPM) no longer gives
// the recorded key: Open refuses; starting once with another key, then with
// the TPM again, makes a new TPM key current and keeps the lost one trusted.
func TestTPMKeyLost(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "tpm:sim")
	id1 := keyID(t, k)
	t1 := ticket(t, k, 1)
	require.NoError(t, k.Close())

	seed := filepath.Join(dir, "tpm-sim.seed")
	require.NoError(t, os.Remove(seed))
	require.NoError(t, os.WriteFile(seed, []byte("0123456789abcdef\n"), 0o600))
	_, err := issuer.Open(context.Background(), dir, "tpm:sim")
	assert.ErrorIs(t, err, issuer.ErrKeyMismatch)
	assert.ErrorContains(t, err, id1.String())

	k = open(t, dir, "")
	require.NoError(t, k.Close())
	k = open(t, dir, "tpm:sim")
	assert.Equal(t, 3, k.KeySet().Len())
	assert.NoError(t, t1.Verify(k.KeySet()))
	assert.NoError(t, ticket(t, k, 2).Verify(pemKeySet(t, dir)))
}

// Moving the issuer key from a file into the TPM retires the file key.
func TestMoveToTPM(t *testing.T) {
	dir := t.TempDir()
	k := open(t, dir, "")
	t1 := ticket(t, k, 1)
	id1 := keyID(t, k)
	require.NoError(t, k.Close())

	k = open(t, dir, "tpm:sim")
	id2 := keyID(t, k)
	assert.NotEqual(t, id1, id2)
	assert.NoError(t, t1.Verify(k.KeySet()))
	assert.Equal(t, sortIDs(id1, id2), pemKeySet(t, dir).IDs())
}

func TestTPMDeviceMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := issuer.Open(context.Background(), dir, "tpm:/nonexistent")
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorContains(t, err, "/nonexistent")
	assert.NoFileExists(t, filepath.Join(dir, "issuer-keys.json"))
}

// A second Keys on the simulator waits for the first, as long as its
// context allows.
func TestTPMSimBusy(t *testing.T) {
	k1 := open(t, t.TempDir(), "tpm:sim")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := issuer.Open(ctx, t.TempDir(), "tpm:sim")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, k1.Close())
	// The abandoned wait gives the simulator back.
	open(t, t.TempDir(), "tpm:sim")
}

func TestTPMConcurrentSign(t *testing.T) {
	k := open(t, t.TempDir(), "tpm:sim")
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tk := unsigned(byte(w*each + i))
				err := tk.Sign(k.Signer())
				if errors.Is(err, issuer.ErrRetired) {
					err = tk.Sign(k.Signer()) // rotated meanwhile
				}
				if err != nil {
					errs <- err
					continue
				}
				if err := tk.Verify(k.KeySet()); err != nil {
					errs <- fmt.Errorf("worker %d, ticket %d: %w", w, i, err)
				}
			}
		})
	}
	// A rotation in the middle: every signature is made by the key its
	// signer names, or refused as retired.
	wg.Go(func() {
		if _, err := k.Rotate(context.Background()); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, 2, k.KeySet().Len())
}
