package hostlib

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/simtix/simtix/apdu"
)

// Trace returns a Transport that writes each command, its response and the
// time it took to w, one line each, as a person reads them:
//
//	→ 80 F2 00 00 00
//	← A5 34 80 02 ... 90 00  9000 (success)  0.12 ms
//
// now is the clock (time.Now when nil).
func Trace(t Transport, w io.Writer, now func() time.Time) Transport {
	if now == nil {
		now = time.Now
	}
	var mu sync.Mutex
	return TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		start := now()
		resp, err := t.Transmit(ctx, cmd)
		took := now().Sub(start)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "→ %s\n", spaced(cmd))
		switch {
		case err != nil:
			fmt.Fprintf(w, "← error: %v  %s\n", err, ms(took))
		case len(resp) >= 2:
			sw := apdu.StatusWord(resp[len(resp)-2])<<8 | apdu.StatusWord(resp[len(resp)-1])
			fmt.Fprintf(w, "← %s  %v  %s\n", spaced(resp), sw, ms(took))
		default:
			fmt.Fprintf(w, "← %s (no status word)  %s\n", spaced(resp), ms(took))
		}
		return resp, err
	})
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func spaced(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		if i > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02X", c)
	}
	return s.String()
}

// Exchange is one recorded command and its answer.
type Exchange struct {
	// Command is the command APDU, in hex.
	Command string `json:"command"`
	// Response is the response APDU, in hex (empty when Error is set).
	Response string `json:"response,omitempty"`
	// Error is the transport error, if the command got no answer.
	Error string `json:"error,omitempty"`
}

// Record returns a Transport that writes every exchange to w as a line of
// JSON (an Exchange), so that the session can be replayed.
func Record(t Transport, w io.Writer) Transport {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		resp, err := t.Transmit(ctx, cmd)
		x := Exchange{Command: hex.EncodeToString(cmd)}
		if err != nil {
			x.Error = err.Error()
		} else {
			x.Response = hex.EncodeToString(resp)
		}
		mu.Lock()
		defer mu.Unlock()
		if werr := enc.Encode(x); werr != nil && err == nil {
			return resp, fmt.Errorf("hostlib: recording: %w", werr)
		}
		return resp, err
	})
}

// ErrReplayMismatch means a replayed session received another command than
// the one recorded at that point, or more commands than were recorded.
var ErrReplayMismatch = errors.New("hostlib: command differs from the recorded session")

// Replay is a Transport that plays a recorded session back: each command
// must be the next recorded one, and gets its recorded answer.
type Replay struct {
	mu   sync.Mutex
	log  []Exchange
	next int
}

// NewReplay reads a session written by Record.
func NewReplay(r io.Reader) (*Replay, error) {
	var log []Exchange
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var x Exchange
		if err := json.Unmarshal(line, &x); err != nil {
			return nil, fmt.Errorf("hostlib: session line %d: %w", n, err)
		}
		for _, h := range []string{x.Command, x.Response} {
			if _, err := hex.DecodeString(h); err != nil {
				return nil, fmt.Errorf("hostlib: session line %d: %w", n, err)
			}
		}
		log = append(log, x)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hostlib: reading a session: %w", err)
	}
	return &Replay{log: log}, nil
}

// Transmit implements Transport.
func (r *Replay) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= len(r.log) {
		return nil, fmt.Errorf("%w: command %d %X after the end of the session", ErrReplayMismatch, r.next+1, cmd)
	}
	x := r.log[r.next]
	if got := hex.EncodeToString(cmd); got != x.Command {
		return nil, fmt.Errorf("%w: command %d is %s, recorded %s", ErrReplayMismatch, r.next+1, got, x.Command)
	}
	r.next++
	if x.Error != "" {
		return nil, errors.New(x.Error)
	}
	resp, _ := hex.DecodeString(x.Response)
	return resp, nil
}

// Done reports whether every recorded exchange was played.
func (r *Replay) Done() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next == len(r.log)
}

// Fault is what a Faults wrapper does to one command.
type Fault int

// The faults.
const (
	// Pass sends the command as usual.
	Pass Fault = iota
	// DropResponse sends the command to the card and loses its answer:
	// ErrResponseLost.
	DropResponse
	// RemoveBefore takes the card away before the command reaches it:
	// ErrCardRemoved, the command not applied.
	RemoveBefore
	// RemoveAfter takes the card away after the card ran the command:
	// ErrCardRemoved, the command applied.
	RemoveAfter
)

// FaultPlan chooses the fault for the n-th command (from 1) through a
// Faults wrapper.
type FaultPlan func(n int, cmd []byte) Fault

// Faults returns a Transport that injects faults for tests: latency before
// each command and the faults plan chooses. A nil plan passes everything.
func Faults(t Transport, latency time.Duration, plan FaultPlan) Transport {
	var mu sync.Mutex
	n := 0
	return TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		if latency > 0 {
			timer := time.NewTimer(latency)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
			}
		}
		f := Pass
		if plan != nil {
			f = plan(k, cmd)
		}
		if f == RemoveBefore {
			return nil, fmt.Errorf("%w (injected before command %d)", ErrCardRemoved, k)
		}
		resp, err := t.Transmit(ctx, cmd)
		switch {
		case err != nil:
			return nil, err
		case f == DropResponse:
			return nil, fmt.Errorf("%w (injected after command %d)", ErrResponseLost, k)
		case f == RemoveAfter:
			return nil, fmt.Errorf("%w (injected after command %d)", ErrCardRemoved, k)
		}
		return resp, nil
	})
}

// FaultAt is a plan with fault f at command n only.
func FaultAt(n int, f Fault) FaultPlan {
	return func(k int, _ []byte) Fault {
		if k == n {
			return f
		}
		return Pass
	}
}
