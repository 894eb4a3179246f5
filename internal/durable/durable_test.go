package durable_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/internal/durable"
)

func TestTempFilesAndCleanUp(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "card.img")
	f, name, err := durable.CreateTemp(dir, durable.TempPrefix(target))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.True(t, durable.IsTempName(filepath.Base(name), durable.TempPrefix(target)))
	info, err := os.Stat(name)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	other := filepath.Join(dir, ".card.img.tmp-notours")
	require.NoError(t, os.WriteFile(other, nil, 0o600))
	require.NoError(t, os.WriteFile(target, []byte("image"), 0o600))
	durable.RemoveStrayTemps(target)
	assert.NoFileExists(t, name)
	assert.FileExists(t, other, "only CreateTemp's names are removed")
	assert.FileExists(t, target)
	assert.NoError(t, durable.SyncDir(dir))
	assert.False(t, durable.IsTempName(".card.img.tmp-0123456789ABCDEF", durable.TempPrefix(target)), "lower-case hex only")
}

func TestFlockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := os.Create(path)
	require.NoError(t, err)
	defer a.Close()
	b, err := os.Open(path)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, durable.Flock(a, syscall.LOCK_EX|syscall.LOCK_NB))
	assert.ErrorIs(t, durable.Flock(b, syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK)
	require.NoError(t, durable.Flock(a, syscall.LOCK_UN))
	assert.NoError(t, durable.Flock(b, syscall.LOCK_EX|syscall.LOCK_NB))
}

func TestBare(t *testing.T) {
	_, err := os.Open(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	assert.ErrorIs(t, durable.Bare(err), os.ErrNotExist)
	assert.NotContains(t, durable.Bare(err).Error(), "missing")
}
