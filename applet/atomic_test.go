package applet_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
)

// scenario is a state to reach and one mutating command to run on it.
type scenario struct {
	name  string
	setup func(h *cardtest.Harness)
	cmd   func(h *cardtest.Harness) (applet.Interface, apdu.Command)
}

var (
	checkGate = [4]byte{'G', 'A', 'T', 'E'}
	checkTime = ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, Hour: 19, Minute: 15}
)

func base(h *cardtest.Harness) {
	h.Select(applet.Contact)
	h.Select(applet.Contactless)
	h.Send(applet.Contact, cardproto.TerminalProfile(cardproto.DefaultProfile))
	h.Sync()
}

func stored(h *cardtest.Harness) ticketfmt.ID {
	base(h)
	t := h.Issue(0)
	require.True(h.T(), h.Store(t).SW.OK())
	require.True(h.T(), h.Store(h.Issue(1)).SW.OK())
	return cardtest.ID(h.T(), t)
}

func check(h *cardtest.Harness, id ticketfmt.ID) apdu.Command {
	return cardproto.Check(id, checkGate, checkTime, [16]byte{1})
}

func firstID(*cardtest.Harness) ticketfmt.ID { return cardtest.IssuedID(1) }

var scenarios = []scenario{
	{"STORE", base, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contact, h.StoreCmd(h.Issue(5), h.Auth())
	}},
	{"DELETE unchecked", func(h *cardtest.Harness) { stored(h) }, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contact, h.DeleteCmd(firstID(h), cardproto.StateUnchecked, h.Auth())
	}},
	{"DELETE checked", func(h *cardtest.Harness) {
		id := stored(h)
		h.OK(applet.Contactless, check(h, id))
	}, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contact, h.DeleteCmd(firstID(h), cardproto.StateChecked, h.Auth())
	}},
	{"CHECK", func(h *cardtest.Harness) { stored(h) }, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contactless, check(h, firstID(h))
	}},
	{"BEGIN SYNC", func(h *cardtest.Harness) { stored(h) }, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contact, cardproto.BeginSync([16]byte{9})
	}},
	{"PUT CERTIFICATE", base, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		a := h.Auth()
		cert := h.V.CardCertificateE5
		return applet.Contact, cardproto.PutCertificate(cert, a, cardkeys.CertMAC(h.F.Keys, h.F.Serial, a, cert))
	}},
	{"FETCH", func(h *cardtest.Harness) { stored(h) }, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contact, cardproto.Fetch()
	}},
	{"TERMINAL RESPONSE", func(h *cardtest.Harness) {
		stored(h)
		h.OK(applet.Contact, cardproto.Fetch())
	}, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contact, cardproto.TerminalResponse(1, 0)
	}},
	{"TERMINAL RESPONSE raising the next", func(h *cardtest.Harness) {
		id := stored(h)
		h.OK(applet.Contact, cardproto.Fetch())
		h.OK(applet.Contactless, check(h, id))
	}, func(h *cardtest.Harness) (applet.Interface, apdu.Command) {
		return applet.Contact, cardproto.TerminalResponse(1, 0)
	}},
}

// outcome is what running a scenario's command gave.
type outcome struct {
	before, after applet.Snapshot
	resp          []byte
	writes        int
	target        *inProcess
	mem           *nvm.Faulty
	err           error
}

// run sets a card up for sc, then runs its command with fault f armed.
func run(t *testing.T, sc scenario, f nvm.Fault) outcome {
	var before applet.Snapshot
	var resp []byte
	var err error
	var writes int
	fx := cardtest.VectorFixture(t)
	ps, pages := applet.MemoryLayout(fx.Capacity, fx.MaxTickets)
	mem := nvm.NewFaulty(nvm.NewRAM(ps, pages), nvm.Fault{})
	card, perr := applet.Personalise(mem, fx.Personalisation())
	require.NoError(t, perr)
	target := &inProcess{card: card}
	h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return target }, fx)
	sc.setup(h)
	iface, cmd := sc.cmd(h)
	raw, berr := cmd.Bytes()
	require.NoError(t, berr)
	before = card.Snapshot()
	mem.SetFault(f)
	mem.PowerOn()
	resp, err = card.Process(iface, raw)
	writes = mem.Writes()
	if err != nil {
		mem.PowerOn()
		card, lerr := applet.Load(mem)
		require.NoError(t, lerr, "the card must power on after a tear")
		target.card = card
	}
	return outcome{before: before, after: target.card.Snapshot(), resp: resp, err: err, writes: writes, target: target, mem: mem}
}

func sw(t *testing.T, resp []byte) apdu.StatusWord {
	r, err := apdu.ParseResponse(resp)
	require.NoError(t, err)
	return r.SW
}

// TestTearAtEveryWrite cuts the power at every single write of every
// mutating command, in every tear mode, and checks that the card then holds
// exactly the old state or exactly the new one: counters, epoch,
// notification and tickets included.
func TestTearAtEveryWrite(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			good := run(t, sc, nvm.Fault{})
			require.NoError(t, good.err)
			require.True(t, sw(t, good.resp).OK(), "%s answered %v", sc.name, sw(t, good.resp))
			old, want, n := good.before, good.after, good.writes
			require.NotEqual(t, old, want, "the command must change the state")
			require.Positive(t, n)
			for _, mode := range []nvm.TearMode{nvm.TearHalf, nvm.TearNone, nvm.TearAfter} {
				for at := 1; at <= n; at++ {
					o := run(t, sc, nvm.Fault{Kind: nvm.Tear, At: at, Mode: mode})
					require.ErrorIs(t, o.err, nvm.ErrPowerLost, "write %d mode %d", at, mode)
					require.Nil(t, o.resp, "no answer after a tear")
					require.Equal(t, old, o.before)
					after, target := o.after, o.target
					if at == n && mode == nvm.TearAfter {
						assert.Equal(t, want, after, "torn after the commit point: fully applied (write %d)", at)
					} else {
						assert.Equal(t, old, after, "torn before the commit point: not applied (write %d mode %d)", at, mode)
					}
					// The card works after the power comes back.
					target.card.Reset(applet.Contact)
					st, err := target.card.Process(applet.Contact, []byte{0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x53, 0x49, 0x4D, 0x54, 0x49, 0x58, 0x01, 0x00})
					require.NoError(t, err)
					require.Equal(t, apdu.SWSuccess, sw(t, st))
				}
			}
		})
	}
}

// TestWriteFaultChangesNothing fails every single write of every mutating
// command: the card answers 6400 and keeps its old state, and the same
// command then succeeds.
func TestWriteFaultChangesNothing(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			good := run(t, sc, nvm.Fault{})
			for at := 1; at <= good.writes; at++ {
				o := run(t, sc, nvm.Fault{Kind: nvm.FailWrite, At: at})
				require.NoError(t, o.err)
				assert.Equal(t, apdu.SWWriteFailed, sw(t, o.resp), "write %d", at)
				assert.Equal(t, good.before, o.after, "write %d: nothing changed", at)
				re, err := applet.Load(o.mem)
				require.NoError(t, err)
				assert.Equal(t, good.before, re.Snapshot(), "write %d: nothing changed in memory", at)
				// Retried, the command succeeds (the fault fires once).
				again := runAgain(t, o.target, sc)
				require.NoError(t, again.err)
				assert.Equal(t, good.resp, again.resp)
				assert.Equal(t, good.after, again.after)
			}
		})
	}
}

// runAgain runs sc's command once more on the card of an earlier run.
func runAgain(t *testing.T, target *inProcess, sc scenario) outcome {
	fx := cardtest.VectorFixture(t)
	h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return target }, fx)
	iface, cmd := sc.cmd(h)
	raw, err := cmd.Bytes()
	require.NoError(t, err)
	before := target.card.Snapshot()
	resp, err := target.card.Process(iface, raw)
	return outcome{before: before, after: target.card.Snapshot(), resp: resp, err: err, target: target}
}
