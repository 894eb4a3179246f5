package pcscd

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebfe/scard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// status returns scripts/pcscd.sh status's exit status (0 running, 3 not).
func status(t *testing.T) int {
	t.Helper()
	root, err := repoRoot()
	require.NoError(t, err)
	err = exec.Command(filepath.Join(root, "scripts", "pcscd.sh"), "status").Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// lockedStatus is status, read while holding the lock (no other user of
// pcscd is between start and stop).
func lockedStatus(t *testing.T) int {
	unlock, err := lock(t, DefaultLockTimeout)
	require.NoError(t, err)
	defer unlock()
	return status(t)
}

func TestStart(t *testing.T) {
	before := lockedStatus(t)
	ran := false
	t.Run("four slots", func(t *testing.T) {
		d := Start(t, Slots(4))
		ran = true
		assert.Equal(t, 0, status(t), "running")
		c, err := scard.EstablishContext()
		require.NoError(t, err)
		defer c.Release()
		readers, err := c.ListReaders()
		require.NoError(t, err)
		assert.Equal(t, []string{"Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD 1 00 00", "Virtual PCD 1 00 01"}, readers)
		assert.Equal(t, readers, d.Readers())
		assert.Equal(t, "127.0.0.1:35965", d.ContactAddr(1))
		assert.Equal(t, "127.0.0.1:35966", d.ContactlessAddr(1))
		assert.Equal(t, "Virtual PCD 1 00 01", d.ContactlessReader(1))
		assert.Equal(t, 35964, Port(1))

		// No card: waiting for none returns at once, waiting for one
		// waits until the context ends.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, d.WaitCard(ctx, d.ContactReader(0), false))
		short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		start := time.Now()
		err = d.WaitCard(short, d.ContactReader(1), true)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
		assert.Error(t, WaitCard(ctx, "No Such Reader 00 00", false))
	})
	require.True(t, ran, "the subtest ran")
	assert.Equal(t, before, lockedStatus(t), "pcscd is left as it was found")
}

func TestReaderNames(t *testing.T) {
	assert.Equal(t, "Virtual PCD 00 00", ReaderName(0))
	assert.Equal(t, "Virtual PCD 00 01", ReaderName(1))
	assert.Equal(t, "Virtual PCD 7 00 01", ReaderName(15))
	assert.Equal(t, "127.0.0.1:35978", Addr(15))
}

// TestLock: the lock keeps a second user waiting, and a wait that lasts
// too long fails with who holds the lock.
func TestLock(t *testing.T) {
	unlock, err := lock(t, DefaultLockTimeout)
	require.NoError(t, err)
	_, err = lock(t, 300*time.Millisecond)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TestLock")
	unlock()
	unlock2, err := lock(t, time.Second)
	require.NoError(t, err)
	unlock2()
}
