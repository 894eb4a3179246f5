package imagefile

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/simtix/simtix/internal/durable"
)

// lockSuffix names the sidecar lock file: the image at P is locked through
// P + lockSuffix. Locking a sidecar rather than the image keeps the lock
// valid when Save renames a new image over the old one.
const lockSuffix = ".lock"

// lockAttempts bounds the retries when the lock file is removed or replaced
// between opening and locking it (its previous holder closing).
const lockAttempts = 16

// lock is a held exclusive flock(2) on an image's sidecar lock file.
type lock struct {
	path string
	file *os.File
}

// acquireLock takes an exclusive, non-blocking flock on imagePath's lock
// file, creating it if needed. Errors name the image as name. It returns an error wrapping ErrLocked if
// another open file description holds it: another process, or another File
// of this process (flock locks belong to open file descriptions, and each
// acquireLock opens its own).
//
// The holder removes the lock file when it lets go (see release). So that
// this never leaves two holders, each on its own inode, the lock only
// counts once the locked descriptor is checked to still be the file at the
// lock path; otherwise it is dropped and taken again.
func acquireLock(name, imagePath string) (*lock, error) {
	path := imagePath + lockSuffix
	for range lockAttempts {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("card image %s: cannot create the lock file: %w", name, err)
		}
		if err := durable.Flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("card image %s: %w (held through %s)", name, ErrLocked, path)
			}
			return nil, fmt.Errorf("card image %s: cannot lock %s: %w", name, path, err)
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("card image %s: cannot lock %s: %w", name, path, err)
		}
		now, err := os.Stat(path)
		if err == nil && os.SameFile(held, now) {
			return &lock{path: path, file: f}, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("card image %s: cannot lock %s: %w", name, path, err)
		}
	}
	return nil, fmt.Errorf("card image %s: %w (%s keeps being replaced)", name, ErrLocked, path)
}

// release removes the lock file, then unlocks it by closing it. Removing
// it while still holding the lock keeps acquireLock's check sound.
func (l *lock) release() error {
	errRemove := os.Remove(l.path)
	if errors.Is(errRemove, os.ErrNotExist) {
		errRemove = nil
	}
	return errors.Join(errRemove, l.file.Close())
}
