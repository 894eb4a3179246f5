package nvm

import (
	"fmt"
	"strconv"
	"strings"
)

// FaultKind is what an injected fault does.
type FaultKind int

// The kinds of fault.
const (
	// NoFault injects nothing.
	NoFault FaultKind = iota
	// FailWrite makes the write fail: nothing is written, the write returns
	// ErrWriteFailed, and the memory goes on working.
	FailWrite
	// Tear cuts the power at the write: the write returns ErrPowerLost and
	// every later access too, until PowerOn.
	Tear
)

// TearMode is what a torn write leaves in its page.
type TearMode int

// The tear modes. A real power cut may leave any of them; tests try all.
const (
	// TearHalf writes the first half of the page: a torn page.
	TearHalf TearMode = iota
	// TearNone cuts the power before the write touches the page.
	TearNone
	// TearAfter cuts the power just after the page was fully written.
	TearAfter
)

// Fault says which write fails and how: the At-th write since power-on,
// counting from 1.
type Fault struct {
	Kind FaultKind
	At   int
	Mode TearMode
}

// String formats the fault as ParseFault reads it.
func (f Fault) String() string {
	switch f.Kind {
	case FailWrite:
		return fmt.Sprintf("write:%d", f.At)
	case Tear:
		return fmt.Sprintf("tear:%d", f.At)
	}
	return "none"
}

// ParseFault reads the command line's fault form: `write:N` (the Nth write
// since power-on fails) or `tear:N` (the power is cut at the Nth write),
// N counting from 1.
func ParseFault(s string) (Fault, error) {
	kind, n, ok := strings.Cut(s, ":")
	at, err := strconv.Atoi(n)
	if !ok || err != nil || at < 1 {
		return Fault{}, fmt.Errorf("fault %q: want write:N or tear:N with N >= 1", s)
	}
	switch kind {
	case "write":
		return Fault{Kind: FailWrite, At: at}, nil
	case "tear":
		return Fault{Kind: Tear, At: at}, nil
	}
	return Fault{}, fmt.Errorf("fault %q: unknown kind %q, want write or tear", s, kind)
}

// Faulty is a RAM that injects a fault at a chosen write. The write count
// starts again at every PowerOn, so the fault fires once per power-on.
type Faulty struct {
	*RAM
	fault  Fault
	writes int
	dead   bool
}

// NewFaulty wraps ram with fault f.
func NewFaulty(ram *RAM, f Fault) *Faulty {
	return &Faulty{RAM: ram, fault: f}
}

// PowerOn restores power after a tear and restarts the write count.
func (f *Faulty) PowerOn() {
	f.dead = false
	f.writes = 0
}

// Writes is the number of writes attempted since power-on.
func (f *Faulty) Writes() int { return f.writes }

// PowerLost reports whether the fault has cut the power.
func (f *Faulty) PowerLost() bool { return f.dead }

// SetFault replaces the fault (and keeps the write count).
func (f *Faulty) SetFault(fault Fault) { f.fault = fault }

// ReadPage implements Memory.
func (f *Faulty) ReadPage(i int, p []byte) error {
	if f.dead {
		return ErrPowerLost
	}
	return f.RAM.ReadPage(i, p)
}

// WritePage implements Memory.
func (f *Faulty) WritePage(i int, p []byte) error {
	if f.dead {
		return ErrPowerLost
	}
	f.writes++
	if f.fault.Kind == NoFault || f.writes != f.fault.At {
		return f.RAM.WritePage(i, p)
	}
	if err := f.RAM.check(i, p); err != nil {
		return err
	}
	if f.fault.Kind == FailWrite {
		return fmt.Errorf("%w (injected at write %d)", ErrWriteFailed, f.writes)
	}
	switch f.fault.Mode {
	case TearHalf:
		f.RAM.writePartial(i, p, len(p)/2)
	case TearAfter:
		f.RAM.writePartial(i, p, len(p))
	}
	f.dead = true
	return fmt.Errorf("%w (torn at write %d)", ErrPowerLost, f.writes)
}
