// Package durable holds the file-system steps that make simtix's files
// crash-safe, shared by the card image file and the gate's journal:
// temporary files named for their target, directory syncs that make a
// rename or link durable, the clean-up of temporary files an interrupted
// write left, and flock(2).
package durable

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

// tempRandLen is the number of hexadecimal digits after a temporary file's
// prefix.
const tempRandLen = 16

// TempPrefix is the start of the names of path's temporary files (in
// path's directory); each continues with 16 hexadecimal digits and nothing
// else.
func TempPrefix(path string) string {
	return "." + filepath.Base(path) + ".tmp-"
}

// CreateTemp creates a new file named prefix and 16 random hex digits in
// dir, mode 0600, and returns it open for writing with its path.
func CreateTemp(dir, prefix string) (*os.File, string, error) {
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

// SyncDir syncs the directory dir, making a rename or link in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	errSync := d.Sync()
	return errors.Join(errSync, d.Close())
}

// RemoveStrayTemps removes the temporary files of path (CreateTemp with
// TempPrefix(path)) that an interrupted write left. The caller must hold
// the lock that keeps writers away. Failures are ignored: a stray file is
// only litter.
func RemoveStrayTemps(path string) {
	dir, prefix := filepath.Dir(path), TempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if IsTempName(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// IsTempName reports whether name is one of CreateTemp's names for prefix.
func IsTempName(name, prefix string) bool {
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

// Flock calls flock(2) on f with how (syscall.LOCK_EX, LOCK_NB, ...),
// retrying on EINTR.
func Flock(f *os.File, how int) error {
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

// Bare strips the operation and path from an *fs.PathError or
// *os.LinkError, whose path the caller's message already names; errors.Is
// still sees the cause (fs.ErrNotExist and the like).
func Bare(err error) error {
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
