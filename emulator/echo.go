package emulator

import (
	"context"
	"sync"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/internal/atr"
)

// Echo is a bare card that answers every command with the command's own
// data and 9000, and does nothing else. It is the baseline that benchmarks
// measure the simtix card against: the same transport, no card logic.
type Echo struct {
	mu      sync.Mutex
	powered [2]bool
}

// ATR implements Device: the simtix ATRs.
func (e *Echo) ATR(i applet.Interface) []byte {
	if i == Contactless {
		return atr.Contactless()
	}
	return atr.Contact(false)
}

// PowerOn implements Device.
func (e *Echo) PowerOn(ctx context.Context, i applet.Interface) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.powered[i] = true
	return e.ATR(i), nil
}

// PowerOff implements Device.
func (e *Echo) PowerOff(ctx context.Context, i applet.Interface) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.powered[i] = false
	return ctx.Err()
}

// Transmit implements Device: the command's data field (everything after a
// 5-byte header with Lc, else nothing) followed by 9000.
func (e *Echo) Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.powered[i] {
		return nil, ErrNoPower
	}
	var data []byte
	if len(cmd) > 5 && cmd[4] != 0 && len(cmd) >= 5+int(cmd[4]) {
		data = cmd[5 : 5+int(cmd[4])]
	}
	out := make([]byte, len(data), len(data)+2)
	copy(out, data)
	return append(out, 0x90, 0x00), nil
}
