package issuer

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm-tools/client"
	"github.com/google/go-tpm/legacy/tpm2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Rotate and Close flush the TPM keys they replace: a TPM holds only a few.
func TestTPMHandlesFlushed(t *testing.T) {
	k, err := Open(context.Background(), t.TempDir(), "tpm:sim")
	require.NoError(t, err)
	tb := k.b.(*tpmBackend)
	transient := func() int {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		h, err := client.Handles(tb.rwc, tpm2.HandleTypeTransient)
		require.NoError(t, err)
		return len(h)
	}
	assert.Equal(t, 1, transient())
	for range 3 {
		_, err := k.Rotate(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 1, transient())
	}
	k.mu.Lock()
	k.cur.close()
	k.cur.close = func() {}
	k.mu.Unlock()
	assert.Equal(t, 0, transient())
	require.NoError(t, k.Close())
}

// createExclusive never replaces a file, and leaves no temporary file.
func TestCreateExclusive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	require.NoError(t, createExclusive(path, []byte("one"), secretMode))
	err := createExclusive(path, []byte("two"), secretMode)
	assert.ErrorIs(t, err, fs.ErrExist)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "one", string(b))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1)
}
