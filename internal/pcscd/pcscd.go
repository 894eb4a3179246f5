// Package pcscd runs pcscd with vsmartcard's virtual reader (vpcd) for
// tests, one user at a time on the machine, through scripts/pcscd.sh.
//
// Only one pcscd can run on a machine (its socket path is fixed) and `go
// test ./...` runs packages in parallel, so Start takes an exclusive lock
// on LockFile, held until the test ends, before it (re)starts pcscd. It
// never skips: a test that cannot have pcscd fails with the script's
// output.
//
// The layout of the readers is scripts/pcscd.sh's: slot n listens on TCP
// port BasePort+n; card k uses slots 2k (contact) and 2k+1 (contactless).
// Slots 0 and 1 are "Virtual PCD 00 00" and "Virtual PCD 00 01" (Debian's
// own vpcd reader); slots 2k and 2k+1 for k >= 1 are "Virtual PCD k 00 00"
// and "Virtual PCD k 00 01".
package pcscd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/simtix/simtix/emulator/vpcd"
)

// LockFile is the lock that serialises every user of pcscd on the machine
// (an exclusive flock, released when the holder ends or dies).
const LockFile = "/tmp/simtix-pcscd.lock"

// BasePort is the TCP port of vpcd's first slot.
const BasePort = vpcd.BasePort

// MaxSlots is the most vpcd slots pcscd can have (pcscd's 16 readers).
const MaxSlots = vpcd.MaxSlots

// DefaultLockTimeout is how long Start waits for another user of pcscd.
const DefaultLockTimeout = 5 * time.Minute

// scriptTimeout bounds one run of scripts/pcscd.sh (start may install
// packages on a fresh machine).
const scriptTimeout = 5 * time.Minute

// Port returns the TCP port of vpcd slot n.
func Port(slot int) int { return BasePort + slot }

// Addr returns the address a card dials to sit in vpcd slot n.
func Addr(slot int) string { return vpcd.SlotAddr(slot) }

// ReaderName returns the PC/SC name of vpcd slot n.
func ReaderName(slot int) string { return vpcd.ReaderName(slot) }

// Option configures Start.
type Option func(*options)

type options struct {
	slots       int
	lockTimeout time.Duration
}

// Slots asks for n vpcd slots (even, 2 to MaxSlots; default 2): n/2 cards
// with both interfaces.
func Slots(n int) Option { return func(o *options) { o.slots = n } }

// LockTimeout sets how long Start waits for another user of pcscd
// (default DefaultLockTimeout).
func LockTimeout(d time.Duration) Option { return func(o *options) { o.lockTimeout = d } }

// Daemon is a pcscd started for a test.
type Daemon struct {
	root  string
	slots int
}

// Start takes the machine's pcscd lock (waiting for other users), starts a
// fresh pcscd with the asked slots through scripts/pcscd.sh (stopping the
// one the script may have left running), and registers a cleanup that
// stops it, or puts back the one that was running before with its slot
// count, and releases the lock. If pcscd cannot be started, the test fails
// with the script's output.
func Start(t testing.TB, opts ...Option) *Daemon {
	t.Helper()
	o := options{slots: 2, lockTimeout: DefaultLockTimeout}
	for _, f := range opts {
		f(&o)
	}
	if o.slots < 2 || o.slots > MaxSlots || o.slots%2 != 0 {
		t.Fatalf("pcscd: %d slots: want an even number from 2 to %d", o.slots, MaxSlots)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	unlock, err := lock(t, o.lockTimeout)
	if err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	d := &Daemon{root: root, slots: o.slots}

	// What was there before: the cleanup puts it back.
	before, _ := d.script("status")
	wasSlots := 0
	if m := runningRE.FindSubmatch(before); m != nil {
		wasSlots, _ = strconv.Atoi(string(m[1]))
	}
	t.Cleanup(func() {
		defer unlock()
		var out []byte
		var err error
		if wasSlots > 0 {
			out, err = d.script("restart", "--slots", strconv.Itoa(wasSlots))
		} else {
			out, err = d.script("stop")
		}
		if err != nil {
			t.Errorf("pcscd: putting pcscd back as it was: %v\n%s", err, out)
		}
	})
	if out, err := d.script("restart", "--slots", strconv.Itoa(o.slots)); err != nil {
		t.Fatalf("pcscd: cannot start pcscd (scripts/pcscd.sh restart --slots %d): %v\n%s", o.slots, err, out)
	}
	return d
}

var runningRE = regexp.MustCompile(`running \(pid \d+, (\d+) slots`)

// Restart stops pcscd and starts it again with the same slots, as a
// machine's pcscd restarts; cards served through vpcd must come back by
// themselves.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	if out, err := d.script("restart", "--slots", strconv.Itoa(d.slots)); err != nil {
		t.Fatalf("pcscd: restart: %v\n%s", err, out)
	}
}

// Stop stops pcscd (until Restart, or the test's end).
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if out, err := d.script("stop"); err != nil {
		t.Fatalf("pcscd: stop: %v\n%s", err, out)
	}
}

// Slots returns the number of vpcd slots.
func (d *Daemon) Slots() int { return d.slots }

// Readers returns the PC/SC names of the vpcd slots, slot 0 first.
func (d *Daemon) Readers() []string {
	names := make([]string, d.slots)
	for n := range names {
		names[n] = ReaderName(n)
	}
	return names
}

// ContactAddr returns the address where card k's contact interface dials.
func (d *Daemon) ContactAddr(card int) string { return Addr(2 * card) }

// ContactlessAddr returns the address where card k's contactless
// interface dials.
func (d *Daemon) ContactlessAddr(card int) string { return Addr(2*card + 1) }

// ContactReader returns the reader name of card k's contact interface.
func (d *Daemon) ContactReader(card int) string { return ReaderName(2 * card) }

// ContactlessReader returns the reader name of card k's contactless
// interface.
func (d *Daemon) ContactlessReader(card int) string { return ReaderName(2*card + 1) }

// LogFile returns pcscd's log (debug with every APDU when
// SIMTIX_PCSCD_DEBUG=1 is set for the test).
func (d *Daemon) LogFile() string {
	run := os.Getenv("SIMTIX_RUN")
	if run == "" {
		run = "/tmp/simtix-pcscd"
	}
	return filepath.Join(run, "pcscd.log")
}

// WaitCard waits until reader holds a card (present) or holds none, or
// ctx is done; see the package function.
func (d *Daemon) WaitCard(ctx context.Context, reader string, present bool) error {
	return WaitCard(ctx, reader, present)
}

// WaitCard waits until reader holds a card (present true; a card that
// does not answer its reset does not count) or holds none (present false),
// or ctx is done. It sleeps in PC/SC's SCardGetStatusChange, without
// polling.
func WaitCard(ctx context.Context, reader string, present bool) error {
	c, err := scard.EstablishContext()
	if err != nil {
		return fmt.Errorf("pcscd: connecting to pcscd: %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			_ = c.Cancel()
		case <-done:
		}
	})
	defer func() {
		close(done)
		wg.Wait()
		_ = c.Release()
	}()
	rs := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
	for {
		if err := c.GetStatusChange(rs, -1); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("pcscd: waiting for %q to hold %s: %w", reader, cardWord(present), ctx.Err())
			}
			return fmt.Errorf("pcscd: waiting for %q to hold %s: %w", reader, cardWord(present), err)
		}
		st := rs[0].EventState
		if st&scard.StateUnknown != 0 {
			return fmt.Errorf("pcscd: no reader %q", reader)
		}
		has := st&scard.StatePresent != 0
		if has == present && (!present || st&scard.StateMute == 0) {
			return nil
		}
		rs[0].CurrentState = st &^ scard.StateChanged
	}
}

func cardWord(present bool) string {
	if present {
		return "a card"
	}
	return "no card"
}

// script runs scripts/pcscd.sh with args and returns its combined output,
// and an error when it failed.
func (d *Daemon) script(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(d.root, "scripts", "pcscd.sh"), args...)
	cmd.Dir = d.root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// pcscd, started in the background, must not keep the pipes open; if
	// it did, Wait would give up after this long.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("scripts/pcscd.sh %s: %w", strings.Join(args, " "), err)
	}
	return out.Bytes(), nil
}

// repoRoot finds the repository (the directory holding scripts/pcscd.sh)
// from the working directory: go test runs in the package's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "pcscd.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/pcscd.sh not found above the working directory")
		}
		dir = parent
	}
}

// lock takes LockFile, waiting at most timeout, and returns its release.
func lock(t testing.TB, timeout time.Duration) (func(), error) {
	f, err := os.OpenFile(LockFile, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", LockFile, err)
	}
	deadline := time.Now().Add(timeout)
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", LockFile, err)
		}
		holder, _ := os.ReadFile(LockFile)
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: another user of pcscd has held it for more than %v (%s)",
				LockFile, timeout, strings.TrimSpace(string(holder)))
		}
		if !logged {
			t.Logf("pcscd: waiting for %s, held by %s", LockFile, strings.TrimSpace(string(holder)))
			logged = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Who holds it, for those who wait.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d (%s, test %s)\n", os.Getpid(), filepath.Base(os.Args[0]), t.Name())), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
