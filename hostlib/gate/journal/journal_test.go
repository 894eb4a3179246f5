package journal_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/ticketfmt"
)

// rec is a valid record numbered n.
func rec(n int) journal.Record {
	r := journal.Record{
		Gate: [4]byte{'G', 'A', 'T', '1'},
		Time: ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, Hour: 19, Minute: n % 60, Second: n % 59},
	}
	copy(r.TicketID[:], fmt.Sprintf("T%09d", n))
	copy(r.Serial[:], "8986001234")
	r.Nonce[0], r.Nonce[15] = byte(n), byte(n>>8)
	r.Receipt = bytes.Repeat([]byte{byte(n)}, journal.ReceiptSize)
	return r
}

func recs(from, to int) []journal.Record {
	var out []journal.Record
	for n := from; n < to; n++ {
		out = append(out, rec(n))
	}
	return out
}

func open(t *testing.T, path string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func appendAll(t *testing.T, j *journal.Journal, rs []journal.Record) {
	t.Helper()
	for _, r := range rs {
		require.NoError(t, j.Append(r))
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gate.journal")
	j := open(t, path)
	assert.Empty(t, j.Records())
	assert.Empty(t, j.Pending())
	appendAll(t, j, recs(0, 5))
	assert.Equal(t, recs(0, 5), j.Records())
	assert.Equal(t, recs(0, 5), j.Pending())
	assert.Equal(t, 5, j.Len())
	assert.True(t, j.Has(rec(3).TicketID))
	assert.False(t, j.Has(rec(5).TicketID))
	require.NoError(t, j.Close())
	require.NoError(t, j.Close(), "closing twice does nothing")
	assert.True(t, j.Has(rec(3).TicketID), "Has still answers after Close")
	assert.ErrorIs(t, j.Append(rec(9)), fs.ErrClosed)
	assert.ErrorIs(t, j.MarkUploaded(1), fs.ErrClosed)

	j = open(t, path)
	assert.Equal(t, recs(0, 5), j.Records())
	assert.Equal(t, recs(0, 5), j.Pending())
	assert.Zero(t, j.Truncated())
	appendAll(t, j, recs(5, 7))
	require.NoError(t, j.Close())
	assert.Equal(t, recs(0, 7), open(t, path).Records())

	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
}

func TestRecordsAreCopies(t *testing.T) {
	j := open(t, filepath.Join(t.TempDir(), "j"))
	r := rec(1)
	require.NoError(t, j.Append(r))
	r.Receipt[0] ^= 0xFF
	got := j.Records()
	assert.Equal(t, rec(1), got[0], "Append keeps its own copy")
	got[0].Receipt[0] ^= 0xFF
	assert.Equal(t, rec(1), j.Records()[0], "Records hands out copies")
}

func TestAppendRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, path)
	bad := rec(1)
	bad.Time.Day = 31
	bad.Time.Month = 11
	assert.ErrorIs(t, j.Append(bad), journal.ErrInvalid)
	short := rec(1)
	short.Receipt = short.Receipt[:63]
	assert.ErrorIs(t, j.Append(short), journal.ErrInvalid)

	require.NoError(t, j.Append(rec(1)))
	size := fileSize(t, path)
	again := rec(1)
	again.Nonce[3], again.Receipt[0] = 9, 9 // the card answered a retried CHECK again
	require.NoError(t, j.Append(again), "the same check: already journaled")
	assert.Equal(t, size, fileSize(t, path), "and not written twice")
	other := rec(1)
	other.Gate[3] = '2'
	assert.ErrorIs(t, j.Append(other), journal.ErrDuplicate)
	assert.Equal(t, []journal.Record{rec(1)}, j.Records())
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, path)
	_, err := journal.Open(path)
	require.ErrorIs(t, err, journal.ErrLocked)
	assert.ErrorContains(t, err, path)
	require.NoError(t, j.Append(rec(1)), "the holder is not disturbed")
	require.NoError(t, j.Close())
	assert.Len(t, open(t, path).Records(), 1, "free again once closed")
}

func TestConcurrentOpens(t *testing.T) {
	// Many opens of a journal nobody created yet: exactly one wins, the
	// others see ErrLocked, and one file is created.
	dir := t.TempDir()
	path := filepath.Join(dir, "j")
	const n = 16
	var wg sync.WaitGroup
	js := make([]*journal.Journal, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { js[i], errs[i] = journal.Open(path) })
	}
	wg.Wait()
	won := 0
	for i := range n {
		if errs[i] == nil {
			won++
			require.NoError(t, js[i].Close())
		} else {
			require.ErrorIs(t, errs[i], journal.ErrLocked)
		}
	}
	assert.Equal(t, 1, won)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
	assert.Equal(t, "j", entries[0].Name())
}

func TestOpenRemovesStrayTemps(t *testing.T) {
	dir := t.TempDir()
	stray := filepath.Join(dir, ".j.tmp-0123456789abcdef")
	other := filepath.Join(dir, ".j.tmp-not-ours")
	require.NoError(t, os.WriteFile(stray, []byte("SIMTIX"), 0o600))
	require.NoError(t, os.WriteFile(other, nil, 0o600))
	open(t, filepath.Join(dir, "j"))
	assert.NoFileExists(t, stray)
	assert.FileExists(t, other)
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	_, err := journal.Open(filepath.Join(dir, "missing", "j"))
	require.ErrorIs(t, err, fs.ErrNotExist, "a missing directory is not created")

	notOurs := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notOurs, []byte("hello, gate"), 0o600))
	_, err = journal.Open(notOurs)
	require.ErrorIs(t, err, journal.ErrNotJournal)

	_, err = journal.Open(dir)
	require.Error(t, err, "a directory")
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

// written returns the file of a journal holding recs(0, n) with the first
// m marked uploaded, and the size it had before its last append.
func written(t *testing.T, n, m int, markLast bool) (data []byte, before int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, path)
	appendAll(t, j, recs(0, n-1))
	require.NoError(t, j.MarkUploaded(m))
	if markLast {
		require.NoError(t, j.Append(rec(n-1)))
		before = fileSize(t, path)
		require.NoError(t, j.MarkUploaded(1))
	} else {
		before = fileSize(t, path)
		require.NoError(t, j.Append(rec(n-1)))
	}
	require.NoError(t, j.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data, before
}

func TestTornTail(t *testing.T) {
	// A crash in the last append: the file ends anywhere in its frame.
	// Open keeps every earlier record, cuts the torn one off, and the
	// journal goes on.
	for _, tc := range []struct {
		name     string
		markLast bool
		records  int
		uploaded int
	}{
		{"torn check", false, 3, 1},
		{"torn upload mark", true, 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, before := written(t, 4, 1, tc.markLast)
			dir := t.TempDir()
			for cut := before; cut < int64(len(data)); cut++ {
				path := filepath.Join(dir, fmt.Sprintf("cut%d", cut))
				require.NoError(t, os.WriteFile(path, data[:cut], 0o600))
				j, err := journal.Open(path)
				require.NoError(t, err, "cut at %d", cut)
				assert.Equal(t, recs(0, tc.records), j.Records(), "cut at %d", cut)
				assert.Len(t, j.Pending(), tc.records-tc.uploaded, "cut at %d", cut)
				assert.Equal(t, cut-before, j.Truncated())
				assert.Equal(t, before, fileSize(t, path), "the torn append is cut off")
				require.NoError(t, j.Append(rec(100)))
				require.NoError(t, j.Close())
				j, err = journal.Open(path)
				require.NoError(t, err)
				assert.Equal(t, append(recs(0, tc.records), rec(100)), j.Records())
				assert.Zero(t, j.Truncated())
				require.NoError(t, j.Close())
			}
		})
	}
}

func TestTornTailJunk(t *testing.T) {
	// A crash can also leave the last append's length in zeros (the file
	// grew, the data never came): the same as a cut.
	data, before := written(t, 3, 0, false)
	path := filepath.Join(t.TempDir(), "j")
	junk := append(bytes.Clone(data[:before]), make([]byte, int64(len(data))-before)...)
	require.NoError(t, os.WriteFile(path, junk, 0o600))
	j := open(t, path)
	assert.Equal(t, recs(0, 2), j.Records())
}

func TestDamageRefused(t *testing.T) {
	// A damaged record with records after it is no crash: Open refuses,
	// and leaves the file as it was for someone to look at.
	data, before := written(t, 4, 2, false)
	dir := t.TempDir()
	for i := 16; i < int(before); i += 7 {
		path := filepath.Join(dir, fmt.Sprintf("flip%d", i))
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		require.NoError(t, os.WriteFile(path, bad, 0o600))
		_, err := journal.Open(path)
		require.ErrorIs(t, err, journal.ErrCorrupt, "byte %d", i)
		assert.ErrorContains(t, err, path)
		kept, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, bad, kept, "byte %d", i)
	}
	// So is more junk after the last record than one append writes.
	path := filepath.Join(dir, "junk")
	require.NoError(t, os.WriteFile(path, append(bytes.Clone(data), make([]byte, 200)...), 0o600))
	_, err := journal.Open(path)
	require.ErrorIs(t, err, journal.ErrCorrupt)
}

func TestPendingAndMarkUploaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, path)
	require.NoError(t, j.MarkUploaded(0), "nothing to mark: nothing happens")
	assert.ErrorIs(t, j.MarkUploaded(1), journal.ErrInvalid)
	appendAll(t, j, recs(0, 5))
	require.NoError(t, j.MarkUploaded(2))
	assert.Equal(t, recs(2, 5), j.Pending())
	assert.ErrorIs(t, j.MarkUploaded(4), journal.ErrInvalid)
	assert.ErrorIs(t, j.MarkUploaded(-1), journal.ErrInvalid)
	require.NoError(t, j.Close())

	j = open(t, path)
	assert.Equal(t, recs(2, 5), j.Pending(), "upload marks survive reopening")
	assert.Equal(t, recs(0, 5), j.Records())
	assert.True(t, j.Has(rec(0).TicketID), "uploaded records are still refused")
	require.NoError(t, j.MarkUploaded(1))
	appendAll(t, j, recs(5, 6))
	require.NoError(t, j.MarkUploaded(3))
	assert.Empty(t, j.Pending())
	require.NoError(t, j.Close())
	assert.Empty(t, open(t, path).Pending())
}
