package pcscd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// viccStartTimeout bounds how long StartVICC waits for pcscd to show vicc's
// card (vicc starts in about a second; pcscd polls every 400 ms).
const viccStartTimeout = 30 * time.Second

// viccStopTimeout bounds how long vicc has to exit on SIGTERM, and then
// how long pcscd has to see its card leave.
const viccStopTimeout = 10 * time.Second

// VICCOptions configure StartVICC.
type VICCOptions struct {
	// QuickAck runs vicc with TCP_QUICKACK set on its socket after every
	// read (scripts/vicc.sh --quickack), as simtix's cards do; as shipped,
	// vicc waits about 44 ms per APDU for vpcd's Nagle stall.
	QuickAck bool
}

// VICC is Debian's Python virtual card (vsmartcard's vicc, card type
// iso7816) in a vpcd slot, for comparisons with simtix's cards.
type VICC struct {
	reader string
	log    string
}

// Reader returns the PC/SC name of the reader that holds vicc's card.
func (v *VICC) Reader() string { return v.reader }

// LogFile returns the file that holds vicc's output (its log at level
// ERROR, and scripts/vicc.sh's messages).
func (v *VICC) LogFile() string { return v.log }

// StartVICC starts vicc through scripts/vicc.sh as card k's contact
// interface (card k's contactless slot stays empty) and waits until pcscd
// shows its card, or ctx is done. If vicc cannot run (not installed, its
// modules do not load, it cannot reach vpcd), the test fails with vicc's
// output: it never skips. A cleanup stops vicc and waits until pcscd has
// seen its card leave.
func (d *Daemon) StartVICC(ctx context.Context, t testing.TB, card int, o VICCOptions) *VICC {
	t.Helper()
	if card < 0 || 2*card >= d.slots {
		t.Fatalf("pcscd: vicc as card %d: pcscd has %d slots (cards 0 to %d)", card, d.slots, d.slots/2-1)
	}
	v := &VICC{reader: d.ContactReader(card), log: filepath.Join(t.TempDir(), "vicc.log")}
	if err := v.start(ctx, t, d.root, Port(2*card), o); err != nil {
		out, _ := os.ReadFile(v.log)
		t.Fatalf("pcscd: cannot run Debian's vicc (vsmartcard-vpicc) as card %d in %q: %v\n--- scripts/vicc.sh and vicc said:\n%s---",
			card, v.reader, err, out)
	}
	return v
}

func (v *VICC) start(ctx context.Context, t testing.TB, root string, port int, o VICCOptions) error {
	// A card left in the slot would be taken for vicc's.
	wctx, cancel := context.WithTimeout(ctx, viccStopTimeout)
	err := WaitCard(wctx, v.reader, false)
	cancel()
	if err != nil {
		return fmt.Errorf("slot not free: %w", err)
	}

	log, err := os.Create(v.log)
	if err != nil {
		return fmt.Errorf("vicc's log: %w", err)
	}
	defer func() { _ = log.Close() }() // the child has its own copy
	args := []string{"run", "--port", strconv.Itoa(port)}
	if o.QuickAck {
		args = append(args, "--quickack")
	}
	args = append(args, "--", "-v") // vicc logs its errors
	cmd := exec.Command(filepath.Join(root, "scripts", "vicc.sh"), args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: the cleanup stops the script and whatever
	// it runs (it execs vicc, after scripts/deps.sh).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting scripts/vicc.sh: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(viccStopTimeout):
			t.Errorf("pcscd: vicc (pid %d) did not exit on SIGTERM within %v: killing it", pgid, viccStopTimeout)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		wctx, cancel := context.WithTimeout(context.Background(), viccStopTimeout)
		defer cancel()
		if err := WaitCard(wctx, v.reader, false); err != nil {
			t.Errorf("pcscd: vicc's card did not leave %q: %v", v.reader, err)
		}
	})

	// Wait for the card; vicc exiting first is a failure, reported at once.
	wctx, cancel = context.WithTimeout(ctx, viccStartTimeout)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-wctx.Done():
		}
	}()
	err = WaitCard(wctx, v.reader, true)
	select {
	case <-exited:
		status := "status 0"
		if waitErr != nil {
			status = strings.TrimPrefix(waitErr.Error(), "exit ")
		}
		return fmt.Errorf("vicc exited (%s) before pcscd saw its card", status)
	default:
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("pcscd saw no card from vicc within %v: %w", viccStartTimeout, err)
		}
		return err
	}
	return nil
}
