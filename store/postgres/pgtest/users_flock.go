//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// usersLock is a shared flock on a file that every test process using the
// cluster holds: the process that started the cluster stops it only if it
// can take the lock exclusively, that is when no other process uses it.
type usersLock struct{ f *os.File }

func lockUsers(path string) (*usersLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("users lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("users lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("users lock %s: %w", path, err)
	}
	return &usersLock{f: f}, nil
}

// alone reports whether no other process holds the lock; it then holds it
// exclusively until release.
func (l *usersLock) alone() bool {
	return syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

func (l *usersLock) release() { l.f.Close() }
