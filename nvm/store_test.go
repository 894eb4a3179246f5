package nvm

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newStore(t *testing.T, image []byte) (*RAM, *Store) {
	t.Helper()
	ps, pages := Layout(len(image))
	ram := NewRAM(ps, pages)
	s, err := Format(ram, image)
	require.NoError(t, err)
	return ram, s
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func TestLayoutFitsMetaInOnePage(t *testing.T) {
	for _, n := range []int{1, 64, 500, 2700, 5000, 20000, 36000, 70000} {
		ps, pages := Layout(n)
		l := (n + ps - 1) / ps
		assert.Equal(t, 2+2*l, pages, "n=%d", n)
		assert.LessOrEqual(t, metaHeader+l*entrySize(l)+4, ps, "n=%d", n)
		assert.Zero(t, ps&(ps-1), "power of two")
	}
	ps, _ := Layout(2700)
	assert.Equal(t, 64, ps, "a default card keeps 64-byte pages")
}

func TestFormatOpenCommit(t *testing.T) {
	img := pattern(2700, 1)
	ram, s := newStore(t, img)
	assert.Equal(t, img, s.Image())

	s2, err := Open(ram)
	require.NoError(t, err)
	assert.Equal(t, img, s2.Image())

	next := append([]byte(nil), img...)
	next[100] ^= 1  // page 1
	next[2699] ^= 1 // the last, partial page
	before := ram.Stats()
	require.NoError(t, s2.Commit(next))
	assert.Equal(t, Stats{PageWrites: 3, BytesWritten: 3 * 64}, ram.Stats().Sub(before), "two pages and the meta page")
	assert.Equal(t, next, s2.Image())

	before = ram.Stats()
	require.NoError(t, s2.Commit(next))
	assert.Equal(t, Stats{}, ram.Stats().Sub(before), "an unchanged image writes nothing")

	s3, err := Open(ram)
	require.NoError(t, err)
	assert.Equal(t, next, s3.Image())

	assert.Error(t, s3.Commit(next[:10]), "wrong length")
}

func TestLargeImageUsesTwoByteEntries(t *testing.T) {
	img := pattern(70000, 3)
	ram, s := newStore(t, img)
	require.Equal(t, 2, entrySize(len(s.table)))
	next := append([]byte(nil), img...)
	next[65000] = ^next[65000]
	require.NoError(t, s.Commit(next))
	s2, err := Open(ram)
	require.NoError(t, err)
	assert.Equal(t, next, s2.Image())
}

func TestOpenRefusesUnformattedMemory(t *testing.T) {
	_, err := Open(NewRAM(64, 10))
	assert.ErrorIs(t, err, ErrNoImage)

	ram, _ := newStore(t, pattern(300, 0))
	data := ram.Bytes()
	data[5] ^= 1    // meta 0
	data[64+5] ^= 1 // meta 1 (never written: already invalid)
	_, err = Open(ram)
	assert.ErrorIs(t, err, ErrNoImage)
}

// TestPowerCutAtEveryWrite cuts the power at each write of a commit, in
// every tear mode, and checks that the memory then holds the old image or
// the new one, never anything else, and that the meta write is the commit
// point.
func TestPowerCutAtEveryWrite(t *testing.T) {
	old := pattern(2700, 1)
	next := append([]byte(nil), old...)
	for _, off := range []int{0, 63, 64, 700, 1500, 2699} {
		next[off] ^= 0x5A
	}
	// Count the writes of this commit.
	ram, s := newStore(t, old)
	before := ram.Stats()
	require.NoError(t, s.Commit(next))
	writes := int(ram.Stats().Sub(before).PageWrites)
	require.Equal(t, 6, writes, "5 pages + meta")

	for _, mode := range []TearMode{TearHalf, TearNone, TearAfter} {
		for at := 1; at <= writes; at++ {
			ram, s := newStore(t, old)
			f := NewFaulty(ram, Fault{Kind: Tear, At: at, Mode: mode})
			s.mem = f
			err := s.Commit(next)
			require.ErrorIs(t, err, ErrPowerLost, "mode %d write %d", mode, at)
			_, err = Open(f)
			require.ErrorIs(t, err, ErrPowerLost, "no access until power-on")
			f.PowerOn()
			got, err := Open(f)
			require.NoError(t, err, "mode %d write %d", mode, at)
			want := old
			if at == writes && mode == TearAfter {
				want = next
			}
			require.True(t, bytes.Equal(want, got.Image()), "mode %d write %d: wrong image", mode, at)
		}
	}
}

func TestFailedWriteChangesNothing(t *testing.T) {
	old := pattern(1000, 9)
	next := pattern(1000, 10)
	for at := 1; at <= 17; at++ {
		ram, s := newStore(t, old)
		f := NewFaulty(ram, Fault{Kind: FailWrite, At: at})
		s.mem = f
		err := s.Commit(next)
		require.ErrorIs(t, err, ErrWriteFailed, "write %d", at)
		assert.Equal(t, old, s.Image())
		re, err := Open(f)
		require.NoError(t, err)
		assert.Equal(t, old, re.Image(), "write %d", at)
		// The fault fires once per power-on: the retry succeeds.
		require.NoError(t, s.Commit(next))
		re, err = Open(f)
		require.NoError(t, err)
		assert.Equal(t, next, re.Image())
	}
}

// TestRandomCommitsAndTears runs many commits of random changes with power
// cuts at random writes; after each, the memory holds the last image that
// committed or the one being committed.
func TestRandomCommitsAndTears(t *testing.T) {
	seed := uint64(20261127)
	rng := rand.New(rand.NewPCG(seed, 1))
	cur := pattern(2700, 0)
	ram, s := newStore(t, cur)
	f := NewFaulty(ram, Fault{})
	s.mem = f
	for step := range 2000 {
		next := append([]byte(nil), cur...)
		for range rng.IntN(8) + 1 {
			off := rng.IntN(len(next))
			n := min(rng.IntN(300)+1, len(next)-off)
			for i := range n {
				next[off+i] = byte(rng.Uint32())
			}
		}
		tear := rng.IntN(3) == 0
		if tear {
			f.SetFault(Fault{Kind: Tear, At: rng.IntN(12) + 1, Mode: TearMode(rng.IntN(3))})
		} else {
			f.SetFault(Fault{})
		}
		f.PowerOn()
		err := s.Commit(next)
		if err == nil {
			cur = next
			continue
		}
		require.ErrorIs(t, err, ErrPowerLost, "seed %d step %d", seed, step)
		f.PowerOn()
		s, err = Open(f)
		require.NoError(t, err, "seed %d step %d", seed, step)
		got := s.Image()
		switch {
		case bytes.Equal(got, cur):
		case bytes.Equal(got, next):
			cur = next
		default:
			t.Fatalf("seed %d step %d: image is neither the old nor the new", seed, step)
		}
	}
}

func TestParseFault(t *testing.T) {
	f, err := ParseFault("write:3")
	require.NoError(t, err)
	assert.Equal(t, Fault{Kind: FailWrite, At: 3}, f)
	assert.Equal(t, "write:3", f.String())
	f, err = ParseFault("tear:12")
	require.NoError(t, err)
	assert.Equal(t, Fault{Kind: Tear, At: 12}, f)
	for _, bad := range []string{"", "write", "write:0", "write:-1", "tear:x", "melt:3", "write:3:4"} {
		_, err := ParseFault(bad)
		assert.Error(t, err, "%q", bad)
	}
}
