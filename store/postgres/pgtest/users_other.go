//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package pgtest

// usersLock is a no-op where there is no flock: the cluster a test process
// started is left running.
type usersLock struct{}

func lockUsers(string) (*usersLock, error) { return &usersLock{}, nil }

func (*usersLock) alone() bool { return false }

func (*usersLock) release() {}
