package contactless

import (
	"context"
	"slices"
	"sync"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib"
)

// Cost is what one command costs the card beyond its bytes.
type Cost struct {
	// Signs tells whether the card made a signature for it.
	Signs bool
	// PageWrites is the number of NVM pages it wrote.
	PageWrites int
}

// CheckPageWrites is the modelled number of NVM page writes of a CHECK,
// the emulator's count, the write of the page that commits it included
// (docs/benchmarks.md, "NVM writes per command").
const CheckPageWrites = 3

// AppletCosts is the cost model of the simtix applet on the contactless
// interface: a CHECK that succeeds signs one receipt and writes
// CheckPageWrites pages; every other command (SELECT, FIND, GET RESPONSE,
// a refused CHECK) neither signs nor writes. A CHECK repeated by the same
// gate at the same time signs again and writes nothing, but is counted as a
// first one: a Recorder reading the card's write counter gets that right.
func AppletCosts(cmd, resp []byte) Cost {
	c, err := apdu.ParseCommand(cmd)
	if err != nil || c.INS != cardproto.InsCheck {
		return Cost{}
	}
	// The part of a chained CHECK that is not the last only answers 9000.
	if cl, err := apdu.ParseClass(c.CLA); err != nil || cl.Kind != apdu.KindProprietary || cl.Chaining {
		return Cost{}
	}
	r, err := apdu.ParseResponse(resp)
	if err != nil || !r.SW.OK() {
		return Cost{}
	}
	return Cost{Signs: true, PageWrites: CheckPageWrites}
}

// Step is one APDU exchange that a Recorder saw.
type Step struct {
	// Command and Response are the APDUs, as sent and as answered.
	Command, Response []byte
	// Cost is the card's cost of the command: from the Recorder's cost
	// model, with PageWrites read from the card when Measured is set.
	Cost
	// Measured tells that PageWrites was read from the card's own write
	// counter rather than modelled.
	Measured bool
}

// Recorder is a hostlib.Transport that passes each command on and records
// the exchange with its cost, so that a gate can estimate the time of its
// check with Model.Estimate. Exchanges that fail (no answer) are not
// recorded. It is safe for concurrent use; measured page writes are exact
// only while nothing else writes to the card during a command (the
// emulator runs one command at a time across both interfaces, but a
// handset's command between the reading and the command would be counted).
type Recorder struct {
	next   hostlib.Transport
	costs  func(cmd, resp []byte) Cost
	writes func() int64

	mu    sync.Mutex
	steps []Step
}

// Option configures a Recorder.
type Option func(*Recorder)

// WithCosts replaces the cost model (AppletCosts by default; nil restores
// it).
func WithCosts(f func(cmd, resp []byte) Cost) Option {
	return func(r *Recorder) {
		r.costs = f
		if f == nil {
			r.costs = AppletCosts
		}
	}
}

// WithPageWrites gives the Recorder the card's cumulative count of NVM page
// writes, read before and after each command, in place of the cost model's
// count. With the emulator:
//
//	contactless.WithPageWrites(func() int64 { return card.Stats().PageWrites })
func WithPageWrites(counter func() int64) Option {
	return func(r *Recorder) { r.writes = counter }
}

var _ hostlib.Transport = (*Recorder)(nil)

// NewRecorder returns a Recorder in front of t.
func NewRecorder(t hostlib.Transport, opts ...Option) *Recorder {
	r := &Recorder{next: t, costs: AppletCosts}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Transmit implements hostlib.Transport.
func (r *Recorder) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	var before int64
	if r.writes != nil {
		before = r.writes()
	}
	resp, err := r.next.Transmit(ctx, cmd)
	if err != nil {
		return resp, err
	}
	s := Step{Command: slices.Clone(cmd), Response: slices.Clone(resp), Cost: r.costs(cmd, resp)}
	if r.writes != nil {
		s.PageWrites = int(r.writes() - before)
		s.Measured = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, s)
	return resp, nil
}

// Steps returns the exchanges recorded so far, in order.
func (r *Recorder) Steps() []Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.steps)
}

// Reset forgets the recorded exchanges: call it before each check.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = nil
}

// Estimate estimates recorded exchanges one after the other: the sum of
// their Exchange breakdowns. Add Activation for a check from the card's
// arrival. It panics on an invalid model.
func (m Model) Estimate(steps []Step) Breakdown {
	m.mustValidate()
	var b Breakdown
	for _, s := range steps {
		b = b.Add(m.Exchange(s.Command, s.Response, s.PageWrites, s.Signs))
	}
	return b
}
