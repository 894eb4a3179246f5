package emulator_test

import (
	"context"
	"testing"
	"time"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
)

// benchCard is a 2 KB card filled with corpus tickets until it refused one,
// with the commands to store them again from its empty state.
type benchCard struct {
	empty   []byte // memory before the stores (applet selected, sync done)
	full    []byte // memory after them
	stores  [][]byte
	deletes [][]byte // DELETE (expected unchecked) of each, from the full card
	ids     []ticketfmt.ID
	date    ticketfmt.Date
	ps      int
}

func newBenchCard(b *testing.B) *benchCard {
	b.Helper()
	t := b
	f := cardtest.VectorFixture(t)
	ram, err := emulator.Personalise(f.Personalisation())
	if err != nil {
		b.Fatal(err)
	}
	card, err := applet.Load(ram)
	if err != nil {
		b.Fatal(err)
	}
	h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return appletTarget{card} }, f)
	h.Select(applet.Contact)
	h.Sync()
	bc := &benchCard{empty: append([]byte(nil), ram.Bytes()...), ps: ram.PageSize()}
	a := h.Auth()
	for n := 0; ; n++ {
		ticket := h.Issue(n)
		cmd, err := h.StoreCmd(ticket, a).Bytes()
		if err != nil {
			b.Fatal(err)
		}
		r := h.Raw(applet.Contact, cmd)
		if r.SW == apdu.SWNotEnoughMemory {
			break
		}
		if r.SW != apdu.SWSuccess {
			b.Fatalf("STORE %d: %v", n, r.SW)
		}
		bc.stores = append(bc.stores, cmd)
		bc.ids = append(bc.ids, cardtest.ID(t, ticket))
		a.Counter++
	}
	for _, id := range bc.ids {
		cmd, _ := h.DeleteCmd(id, cardproto.StateUnchecked, a).Bytes()
		bc.deletes = append(bc.deletes, cmd)
		a.Counter++
	}
	bc.date = card.Snapshot().Tickets[0].Ticket.Date
	bc.full = append([]byte(nil), ram.Bytes()...)
	return bc
}

// appletTarget drives the applet directly, for setting cards up.
type appletTarget struct{ card *applet.Card }

func (a appletTarget) Transmit(_ context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	return a.card.Process(i, cmd)
}
func (a appletTarget) Reset(_ context.Context, i applet.Interface) error { a.card.Reset(i); return nil }

// open returns an in-memory emulated card holding mem, both interfaces on
// and the applet selected on both.
func (bc *benchCard) open(b *testing.B, mem []byte) (*emulator.Card, *nvm.RAM) {
	ram, err := nvm.RAMFromBytes(bc.ps, mem)
	if err != nil {
		b.Fatal(err)
	}
	c, err := emulator.New(ram, emulator.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sel, _ := cardproto.SelectNoFCI().Bytes()
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		if _, err := c.PowerOn(context.Background(), i); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Transmit(context.Background(), i, sel); err != nil {
			b.Fatal(err)
		}
	}
	return c, ram
}

const batch = 32

// roundTrip times batches of op against batches of a bare echo of the same
// command size through the same in-process port, interleaved, and reports
// ns/op of op and its ratio to the echo.
func roundTrip(b *testing.B, port func() *emulator.Port, op func(k int) []byte, after func(k int)) {
	echo := &emulator.Echo{}
	ctx := context.Background()
	if _, err := echo.PowerOn(ctx, port().Interface()); err != nil {
		b.Fatal(err)
	}
	echoPort := emulator.NewPort(echo, port().Interface())
	var tOp, tEcho time.Duration
	k := 0
	b.ResetTimer()
	for b.Loop() {
		cmds := make([][]byte, batch)
		for j := range cmds {
			cmds[j] = op(k + j)
		}
		t0 := time.Now()
		for _, c := range cmds {
			if _, err := echoPort.Transmit(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for j, c := range cmds {
			resp, err := port().Transmit(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			if sw := apdu.StatusWord(resp[len(resp)-2])<<8 | apdu.StatusWord(resp[len(resp)-1]); !sw.OK() {
				b.Fatalf("command %d answered %v", k+j, sw)
			}
			if after != nil {
				after(k + j)
			}
		}
		tOp += time.Since(t1)
		tEcho += t1.Sub(t0)
		k += batch
	}
	n := float64(k)
	b.ReportMetric(float64(tOp.Nanoseconds())/n, "card-ns/apdu")
	b.ReportMetric(float64(tEcho.Nanoseconds())/n, "echo-ns/apdu")
	b.ReportMetric(float64(tOp)/float64(tEcho), "x-echo")
}

// BenchmarkRoundTrip measures in-process round trips through an emulator
// port, each against a bare echo card through the same path in the same
// run (x-echo is the ratio).
func BenchmarkRoundTrip(b *testing.B) {
	bc := newBenchCard(b)
	b.Run("STATUS", func(b *testing.B) {
		c, _ := bc.open(b, bc.full)
		cmd, _ := cardproto.Status().Bytes()
		roundTrip(b, func() *emulator.Port { return c.Port(applet.Contact) }, func(int) []byte { return cmd }, nil)
	})
	b.Run("READ", func(b *testing.B) {
		c, _ := bc.open(b, bc.full)
		cmds := make([][]byte, len(bc.ids))
		for i, id := range bc.ids {
			cmds[i], _ = cardproto.Read(id).Bytes()
		}
		roundTrip(b, func() *emulator.Port { return c.Port(applet.Contact) }, func(k int) []byte { return cmds[k%len(cmds)] }, nil)
	})
	b.Run("FIND", func(b *testing.B) {
		c, _ := bc.open(b, bc.full)
		cmd, _ := cardproto.Find(cardproto.Query{Date: bc.date}).Bytes()
		roundTrip(b, func() *emulator.Port { return c.Port(applet.Contactless) }, func(int) []byte { return cmd }, nil)
	})
	b.Run("CHECK", func(b *testing.B) {
		c, _ := bc.open(b, bc.full)
		gate := [cardkeys.GateIDSize]byte{'G', 'A', 'T', 'E'}
		when := ticketfmt.DateTime{Date: bc.date, Hour: 19}
		cmds := make([][]byte, len(bc.ids))
		for i, id := range bc.ids {
			cmds[i], _ = cardproto.Check(id, gate, when, [16]byte{byte(i)}).Bytes()
		}
		roundTrip(b, func() *emulator.Port { return c.Port(applet.Contactless) }, func(k int) []byte { return cmds[k%len(cmds)] }, func(k int) {
			if (k+1)%len(cmds) == 0 { // every ticket checked: start again from the full card
				b.StopTimer()
				c, _ = bc.open(b, bc.full)
				b.StartTimer()
			}
		})
	})
	b.Run("STORE", func(b *testing.B) {
		c, _ := bc.open(b, bc.empty)
		roundTrip(b, func() *emulator.Port { return c.Port(applet.Contact) }, func(k int) []byte { return bc.stores[k%len(bc.stores)] }, func(k int) {
			if (k+1)%len(bc.stores) == 0 {
				b.StopTimer()
				c, _ = bc.open(b, bc.empty)
				b.StartTimer()
			}
		})
	})
}

// BenchmarkNVMWrites reports the memory writes of one STORE, CHECK and
// DELETE (averaged over filling, checking and emptying a 2 KB card).
func BenchmarkNVMWrites(b *testing.B) {
	bc := newBenchCard(b)
	ctx := context.Background()
	run := func(b *testing.B, mem []byte, iface applet.Interface, cmds [][]byte) {
		var pages, bytes int64
		ops := 0
		for b.Loop() {
			c, ram := bc.open(b, mem)
			before := ram.Stats()
			for _, cmd := range cmds {
				if _, err := c.Transmit(ctx, iface, cmd); err != nil {
					b.Fatal(err)
				}
			}
			d := ram.Stats().Sub(before)
			pages += d.PageWrites
			bytes += d.BytesWritten
			ops += len(cmds)
		}
		b.ReportMetric(float64(pages)/float64(ops), "pages/cmd")
		b.ReportMetric(float64(bytes)/float64(ops), "bytes/cmd")
		b.ReportMetric(float64(len(bc.stores)), "tickets/2KB")
	}
	gate := [cardkeys.GateIDSize]byte{'G', 'A', 'T', 'E'}
	checks := make([][]byte, len(bc.ids))
	for i, id := range bc.ids {
		checks[i], _ = cardproto.Check(id, gate, ticketfmt.DateTime{Date: bc.date, Hour: 19}, [16]byte{}).Bytes()
	}
	b.Run("STORE", func(b *testing.B) { run(b, bc.empty, applet.Contact, bc.stores) })
	b.Run("CHECK", func(b *testing.B) { run(b, bc.full, applet.Contactless, checks) })
	b.Run("DELETE", func(b *testing.B) { run(b, bc.full, applet.Contact, bc.deletes) })
}
