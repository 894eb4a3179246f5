package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// create puts a new, empty journal (the header only) at path, atomically:
// written to a temporary file in the same directory, synced, linked to
// path, then the directory is synced. Something already at path (another
// Open creating it at the same moment) is left alone and is not an error.
func create(path string) error {
	dir := filepath.Dir(path)
	tmp, tmpPath, err := createTemp(dir, tempPrefix(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmpPath)
	_, err = tmp.Write(header())
	if err == nil {
		err = tmp.Sync()
	}
	if errClose := tmp.Close(); err == nil {
		err = errClose
	}
	if err != nil {
		return bare(err)
	}
	if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return bare(err)
	}
	return syncDir(dir)
}

// tempPrefix is the start of the names of path's temporary files; each
// continues with tempRandLen hexadecimal digits and nothing else.
func tempPrefix(path string) string {
	return "." + filepath.Base(path) + ".tmp-"
}

const tempRandLen = 16

// createTemp creates a new file named prefix + tempRandLen hex digits in
// dir, mode 0600 (a journal tells where cards went).
func createTemp(dir, prefix string) (*os.File, string, error) {
	for range 100 {
		name := filepath.Join(dir, fmt.Sprintf("%s%0*x", prefix, tempRandLen, rand.Uint64()))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", fmt.Errorf("cannot create a temporary file: %w", err)
		}
	}
	return nil, "", fmt.Errorf("cannot create a temporary file in %s: too many name collisions", dir)
}

// syncDir syncs the directory dir, making a link in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	errSync := d.Sync()
	return errors.Join(errSync, d.Close())
}

// removeStrayTemps removes the temporary files an interrupted create left
// next to the journal at path. Failures are ignored: a stray file is only
// litter.
func removeStrayTemps(path string) {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if isTempName(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// isTempName reports whether name is one of createTemp's names for prefix.
func isTempName(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || len(rest) != tempRandLen {
		return false
	}
	for _, c := range []byte(rest) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// flock calls flock(2) on f, retrying on EINTR.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errFlock error
	err = rc.Control(func(fd uintptr) {
		for {
			errFlock = syscall.Flock(int(fd), how)
			if errFlock != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return errFlock
}

// bare strips the operation and path from an *fs.PathError or
// *os.LinkError, whose path the caller's message already names; errors.Is
// still sees the cause.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
