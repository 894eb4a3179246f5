package imagefile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/internal/durable"
)

// testImage returns an image of pages pages of pageSize bytes whose memory
// depends on seed.
func testImage(pageSize, pages int, label string, seed byte) Image {
	mem := make([]byte, pageSize*pages)
	for i := range mem {
		mem[i] = byte(i*7) + seed
	}
	return Image{PageSize: pageSize, Memory: mem, Label: label}
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// isLoadError reports whether err is one of the errors a bad file loads
// with.
func isLoadError(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotImage) || errors.Is(err, ErrVersion)
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "card.img")
	first := testImage(64, 16, "simtix card 8986", 1)
	require.NoError(t, Create(path, first))
	assert.Equal(t, []string{"card.img"}, dirNames(t, dir), "Create leaves no temporary or lock file")

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, encode(first), raw)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), st.Mode().Perm())

	got, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, first, got)

	f, err := Open(path)
	require.NoError(t, err)
	assert.Equal(t, path, f.Path())
	assert.Equal(t, first, f.Image())
	assert.ElementsMatch(t, []string{"card.img", "card.img.lock"}, dirNames(t, dir))

	second := testImage(64, 32, "", 2)
	require.NoError(t, f.Save(second))
	assert.Equal(t, second, f.Image())
	got, err = Read(path)
	require.NoError(t, err)
	assert.Equal(t, second, got)

	third := testImage(128, 3, strings.Repeat("x", MaxLabel), 3)
	require.NoError(t, f.Save(third))
	assert.Equal(t, third, f.Image())
	require.NoError(t, f.Close())
	assert.Equal(t, []string{"card.img"}, dirNames(t, dir), "Close removes the lock file, Save leaves no temporary file")

	f, err = Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, third, f.Image())
}

func TestImageIsACopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	img := testImage(16, 4, "l", 0)
	require.NoError(t, Create(path, img))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()

	got := f.Image()
	got.Memory[0] ^= 0xFF
	assert.Equal(t, img, f.Image(), "changing the returned Memory does not change the File")

	next := testImage(16, 4, "l", 9)
	saved := slices.Clone(next.Memory)
	require.NoError(t, f.Save(next))
	next.Memory[0] ^= 0xFF
	assert.Equal(t, saved, f.Image().Memory, "Save does not keep the caller's Memory")
}

func TestCreateRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	img := testImage(16, 2, "", 0)

	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, []byte("not yours"), 0o644))
	image := filepath.Join(dir, "image")
	require.NoError(t, Create(image, testImage(32, 2, "old", 5)))
	imageBefore, err := os.ReadFile(image)
	require.NoError(t, err)
	dangling := filepath.Join(dir, "dangling")
	require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), dangling))
	subdir := filepath.Join(dir, "subdir")
	require.NoError(t, os.Mkdir(subdir, 0o755))

	for _, path := range []string{plain, image, dangling, subdir} {
		err := Create(path, img)
		require.ErrorIs(t, err, ErrExists, path)
		assert.Equal(t, fmt.Sprintf("card image %s: already exists", path), err.Error())
	}
	got, err := os.ReadFile(plain)
	require.NoError(t, err)
	assert.Equal(t, []byte("not yours"), got)
	got, err = os.ReadFile(image)
	require.NoError(t, err)
	assert.Equal(t, imageBefore, got)
	_, err = os.Lstat(filepath.Join(dir, "nowhere"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "the symlink's target was not created")
	assert.ElementsMatch(t, []string{"plain", "image", "dangling", "subdir"}, dirNames(t, dir))
}

func TestCreateRefusesInvalidImage(t *testing.T) {
	for name, img := range map[string]Image{
		"zero page size":      {PageSize: 0, Memory: make([]byte, 16)},
		"negative page size":  {PageSize: -16, Memory: make([]byte, 16)},
		"page size too small": {PageSize: 8, Memory: make([]byte, 16)},
		"page size too large": {PageSize: MaxPageSize * 2, Memory: make([]byte, MaxPageSize*2)},
		"no memory":           {PageSize: 16},
		"partial page":        {PageSize: 16, Memory: make([]byte, 40)},
		"label too long":      {PageSize: 16, Memory: make([]byte, 16), Label: strings.Repeat("é", MaxLabel/2+1)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "card.img")
			err := Create(path, img)
			require.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), "card image "+path+": cannot create: invalid image: ")
			assert.Empty(t, dirNames(t, dir), "nothing is written")
		})
	}
}

func TestSaveRefusesInvalidImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	img := testImage(16, 2, "", 0)
	require.NoError(t, Create(path, img))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()

	err = f.Save(Image{PageSize: 16, Memory: make([]byte, 17)})
	require.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, "card image "+path+": cannot save: invalid image: memory length 17 is not a multiple of the page size 16", err.Error())
	assert.Equal(t, img, f.Image())
	got, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, img, got)
}

func TestOpenLockedInSameProcess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "card.img")
	require.NoError(t, Create(path, testImage(16, 2, "", 0)))

	f, err := Open(path)
	require.NoError(t, err)
	for range 3 {
		g, err := Open(path)
		require.ErrorIs(t, err, ErrLocked)
		assert.Nil(t, g)
		assert.Equal(t, fmt.Sprintf("card image %s: in use: locked by another open of the image (held through %s.lock)", path, path), err.Error())
	}
	assert.ElementsMatch(t, []string{"card.img", "card.img.lock"}, dirNames(t, dir), "a refused Open leaves the holder's lock file")
	require.NoError(t, f.Save(testImage(16, 3, "", 1)), "the holder still saves")
	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "a second Close does nothing")

	g, err := Open(path)
	require.NoError(t, err, "the lock is free once closed")
	assert.Equal(t, testImage(16, 3, "", 1), g.Image())
	_, err = Open(path)
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, g.Close())
}

func TestCreateWhileLocked(t *testing.T) {
	// A path being opened (here: a file that does not exist yet, opened
	// through the lock) cannot be created under its holder.
	path := filepath.Join(t.TempDir(), "card.img")
	l, err := acquireLock(path, path)
	require.NoError(t, err)
	err = Create(path, testImage(16, 1, "", 0))
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, l.release())
	require.NoError(t, Create(path, testImage(16, 1, "", 0)))
}

// helperEnv selects TestHelperProcess's role in a child process.
const helperEnv = "SIMTIX_IMAGEFILE_HELPER"

// TestHelperProcess is not a test: run as a child process by other tests
// (with helperEnv set), it opens the image at SIMTIX_IMAGEFILE_PATH and
// acts as its role says.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("run as a child process by other tests")
	}
	path := os.Getenv("SIMTIX_IMAGEFILE_PATH")
	f, err := Open(path)
	switch {
	case errors.Is(err, ErrLocked):
		fmt.Println("locked")
		os.Exit(0)
	case err != nil:
		fmt.Println("error:", err)
		os.Exit(1)
	}
	switch role {
	case "open":
		fmt.Println("opened")
	case "hold":
		// Hold the lock until stdin is closed.
		fmt.Println("holding")
		_, _ = io.Copy(io.Discard, os.Stdin)
	case "saveloop":
		// Save two images alternately until killed.
		f.SetSync(false)
		a, b := testImage(64, 64, "a", 1), testImage(64, 80, "b", 2)
		fmt.Println("saving")
		for i := 0; ; i++ {
			img := a
			if i%2 == 1 {
				img = b
			}
			if err := f.Save(img); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
		}
	}
	if err := f.Close(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helper returns a command running TestHelperProcess in role on path.
func helper(t *testing.T, role, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	// GORACE: a race-enabled child otherwise sleeps a second on exit.
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "SIMTIX_IMAGEFILE_PATH="+path, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	return cmd
}

// helperSays runs the helper in role on path and returns its output.
func helperSays(t *testing.T, role, path string) string {
	t.Helper()
	out, err := helper(t, role, path).Output()
	require.NoError(t, err, "helper output: %s", out)
	return strings.TrimSpace(string(out))
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, Create(path, testImage(16, 2, "", 0)))

	assert.Equal(t, "opened", helperSays(t, "open", path), "the child can open a free image")

	f, err := Open(path)
	require.NoError(t, err)
	assert.Equal(t, "locked", helperSays(t, "open", path), "the child cannot open an image this process holds")
	require.NoError(t, f.Close())
	assert.Equal(t, "opened", helperSays(t, "open", path))

	// And the other way round: a child holds it.
	child := helper(t, "hold", path)
	stdin, err := child.StdinPipe()
	require.NoError(t, err)
	stdout, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "holding\n", line)
	_, err = Open(path)
	require.ErrorIs(t, err, ErrLocked)
	got, err := Read(path)
	require.NoError(t, err, "Read does not need the lock")
	assert.Equal(t, testImage(16, 2, "", 0), got)
	require.NoError(t, stdin.Close())
	require.NoError(t, child.Wait())

	f, err = Open(path)
	require.NoError(t, err, "the lock is free once the child closed it")
	require.NoError(t, f.Close())
}

func TestKilledMidSave(t *testing.T) {
	// A process killed at a random moment of a run of saves leaves the
	// image whole (one of the two images it saves) and free to open.
	dir := t.TempDir()
	path := filepath.Join(dir, "card.img")
	initial := testImage(64, 64, "initial", 0)
	require.NoError(t, Create(path, initial))
	valid := []Image{initial, testImage(64, 64, "a", 1), testImage(64, 80, "b", 2)}

	sawTemp := false
	for i := range 20 {
		child := helper(t, "saveloop", path)
		stdout, err := child.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, child.Start())
		line, err := bufio.NewReader(stdout).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "saving\n", line)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		require.NoError(t, child.Process.Signal(syscall.SIGKILL))
		_ = child.Wait()

		got, err := Read(path)
		require.NoError(t, err, "iteration %d", i)
		assert.Contains(t, valid, got, "iteration %d", i)
		for _, name := range dirNames(t, dir) {
			sawTemp = sawTemp || durable.IsTempName(name, durable.TempPrefix(path))
		}
		f, err := Open(path)
		require.NoError(t, err, "iteration %d: the dead process's lock is gone", i)
		assert.Equal(t, got, f.Image())
		require.NoError(t, f.Close())
		assert.Equal(t, []string{"card.img"}, dirNames(t, dir), "iteration %d: Open removed stray files", i)
	}
	t.Logf("a kill left a temporary file behind: %v", sawTemp)
}

func TestReadWhileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	img := testImage(32, 4, "card", 3)
	require.NoError(t, Create(path, img))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()

	got, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, img, got)
	next := testImage(32, 8, "card", 4)
	require.NoError(t, f.Save(next))
	got, err = Read(path)
	require.NoError(t, err)
	assert.Equal(t, next, got)
}

func TestSaveAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	img := testImage(16, 2, "", 0)
	require.NoError(t, Create(path, img))
	f, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	err = f.Save(testImage(16, 2, "", 1))
	require.ErrorIs(t, err, fs.ErrClosed)
	assert.Equal(t, "card image "+path+": cannot save: file already closed", err.Error())
	assert.Equal(t, img, f.Image(), "Image still returns the last image")
	got, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, img, got, "the file is unchanged")
}

func TestOpenMissing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "card.img")
	f, err := Open(path)
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Nil(t, f)
	assert.Equal(t, "card image "+path+": cannot open: no such file or directory", err.Error())
	assert.Empty(t, dirNames(t, dir), "a failed Open leaves no lock file")

	_, err = Read(path)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestOpenNotRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "card.img")
	require.NoError(t, os.Mkdir(path, 0o755))
	_, err := Open(path)
	require.ErrorIs(t, err, ErrNotImage)
	assert.Equal(t, "card image "+path+": not a simtix card image: not a regular file", err.Error())

	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	_, err = Read(fifo)
	require.ErrorIs(t, err, ErrNotImage, "a FIFO is refused without blocking")
	assert.ElementsMatch(t, []string{"card.img", "fifo"}, dirNames(t, dir))
}

func TestOpenThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "cards"), 0o755))
	target := filepath.Join(dir, "cards", "card.img")
	link := filepath.Join(dir, "link.img")
	require.NoError(t, Create(target, testImage(16, 2, "", 0)))
	require.NoError(t, os.Symlink(filepath.Join("cards", "card.img"), link))

	f, err := Open(link)
	require.NoError(t, err)
	_, err = Open(target)
	require.ErrorIs(t, err, ErrLocked, "the link and its target are one image, one lock")
	assert.Contains(t, err.Error(), "card image "+target+": ")
	next := testImage(16, 3, "", 1)
	require.NoError(t, f.Save(next))
	require.NoError(t, f.Close())

	st, err := os.Lstat(link)
	require.NoError(t, err)
	assert.Equal(t, fs.ModeSymlink, st.Mode().Type(), "Save keeps the link")
	got, err := Read(target)
	require.NoError(t, err)
	assert.Equal(t, next, got, "Save replaced the target")
	assert.Equal(t, []string{"card.img"}, dirNames(t, filepath.Join(dir, "cards")))
	assert.Equal(t, []string{"cards", "link.img"}, dirNames(t, dir))
}

func TestSaveKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, Create(path, testImage(16, 2, "", 0)))
	require.NoError(t, os.Chmod(path, 0o640))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Save(testImage(16, 2, "", 1)))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o640), st.Mode().Perm())
}

func TestSaveWithoutSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, Create(path, testImage(16, 2, "", 0)))
	f, err := Open(path)
	require.NoError(t, err)
	f.SetSync(false)
	img := testImage(16, 5, "fast", 1)
	require.NoError(t, f.Save(img))
	f.SetSync(true)
	require.NoError(t, f.Close())
	got, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, img, got)
}

// damagedMessage is how a checksum failure reads.
const damagedMessage = "damaged: checksum mismatch (the file was changed or truncated outside simtix)"

func TestDamagedImageRefused(t *testing.T) {
	// Every single-bit change anywhere in a small image is refused, by
	// Read and by Open, and never yields an image.
	dir := t.TempDir()
	path := filepath.Join(dir, "card.img")
	good := encode(testImage(16, 2, "ab", 7))
	kinds := map[string]int{}
	for pos := range good {
		for bit := range 8 {
			bad := slices.Clone(good)
			bad[pos] ^= 1 << bit
			require.NoError(t, os.WriteFile(path, bad, 0o600))

			img, err := Read(path)
			require.Error(t, err, "byte %d bit %d", pos, bit)
			require.True(t, isLoadError(err), "byte %d bit %d: %v", pos, bit, err)
			require.Zero(t, img, "byte %d bit %d", pos, bit)
			require.True(t, strings.HasPrefix(err.Error(), "card image "+path+": "), err.Error())

			f, errOpen := Open(path)
			require.Nil(t, f, "byte %d bit %d", pos, bit)
			require.Equal(t, err.Error(), errOpen.Error())
			for _, sentinel := range []error{ErrCorrupt, ErrNotImage, ErrVersion} {
				if errors.Is(err, sentinel) {
					kinds[sentinel.Error()]++
				}
			}
		}
	}
	assert.Equal(t, []string{"card.img"}, dirNames(t, dir), "failed Opens leave no lock file")
	// Every kind of refusal occurs: a changed magic, a newer version, and
	// damage elsewhere.
	assert.Len(t, kinds, 3, "%v", kinds)

	// A change in the memory is found by the checksum, with this message.
	bad := slices.Clone(good)
	bad[len(good)-sumSize-1] ^= 0x10
	require.NoError(t, os.WriteFile(path, bad, 0o600))
	_, err := Read(path)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Equal(t, "card image "+path+": "+damagedMessage, err.Error())
}

func TestTruncatedOrExtendedRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	good := encode(testImage(16, 2, "ab", 7))
	for n := range len(good) {
		require.NoError(t, os.WriteFile(path, good[:n], 0o600))
		img, err := Read(path)
		if n == 0 {
			require.ErrorIs(t, err, ErrNotImage)
			assert.Equal(t, "card image "+path+": not a simtix card image: the file is empty", err.Error())
		} else {
			require.ErrorIs(t, err, ErrCorrupt, "%d bytes", n)
			assert.Contains(t, err.Error(), "card image "+path+": damaged: truncated: ", "%d bytes", n)
		}
		assert.Zero(t, img)
	}
	for _, extra := range [][]byte{{0}, bytes.Repeat([]byte{0xAA}, 100), good} {
		require.NoError(t, os.WriteFile(path, append(slices.Clone(good), extra...), 0o600))
		img, err := Read(path)
		require.ErrorIs(t, err, ErrCorrupt)
		assert.Equal(t, fmt.Sprintf("card image %s: damaged: %d trailing bytes after the %d the header announces", path, len(extra), len(good)), err.Error())
		assert.Zero(t, img)
	}
}

func TestCrashMidSaveLeavesOldImage(t *testing.T) {
	// What a crash during Save can leave: a temporary file partly or fully
	// written but not renamed. The old image loads; Open removes the
	// temporary files and nothing else.
	dir := t.TempDir()
	path := filepath.Join(dir, "card.img")
	old := testImage(64, 8, "old", 1)
	require.NoError(t, Create(path, old))
	next := encode(testImage(64, 8, "next", 2))
	prefix := durable.TempPrefix(path)
	partial := filepath.Join(dir, prefix+"0123456789abcdef")
	complete := filepath.Join(dir, prefix+"fedcba9876543210")
	empty := filepath.Join(dir, prefix+"0000000000000000")
	require.NoError(t, os.WriteFile(partial, next[:len(next)/2], 0o600))
	require.NoError(t, os.WriteFile(complete, next, 0o600))
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	// Not ours: other names, another image's temporary files.
	others := []string{"notes.txt", "card.img.bak", prefix + "0123", prefix + "0123456789ABCDEF",
		prefix + "0123456789abcdef.x", durable.TempPrefix("card.img.tmp-0123456789abcdef") + "0123456789abcdef"}
	for _, name := range others {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("keep"), 0o600))
	}

	got, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, old, got)

	f, err := Open(path)
	require.NoError(t, err)
	assert.Equal(t, old, f.Image())
	assert.ElementsMatch(t, append([]string{"card.img", "card.img.lock"}, others...), dirNames(t, dir))

	newer := testImage(64, 8, "newer", 3)
	require.NoError(t, f.Save(newer))
	require.NoError(t, f.Close())
	assert.ElementsMatch(t, append([]string{"card.img"}, others...), dirNames(t, dir))
	got, err = Read(path)
	require.NoError(t, err)
	assert.Equal(t, newer, got)
}

func TestConcurrentUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, Create(path, testImage(16, 4, "", 0)))
	f, err := Open(path)
	require.NoError(t, err)
	f.SetSync(false)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				img := testImage(16, 4, "", byte(g*20+i))
				assert.NoError(t, f.Save(img))
				got := f.Image()
				assert.Len(t, got.Memory, 64)
			}
		})
	}
	wg.Wait()
	require.NoError(t, f.Close())
	_, err = Read(path)
	require.NoError(t, err)
}

func BenchmarkSave(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "card.img")
			img := testImage(256, size/256, "simtix card 89860000000000000001", 0)
			require.NoError(b, Create(path, img))
			f, err := Open(path)
			require.NoError(b, err)
			defer f.Close()
			f.SetSync(false)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				img.Memory[i%size]++
				i++
				if err := f.Save(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
