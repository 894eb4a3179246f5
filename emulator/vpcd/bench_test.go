package vpcd_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/pcscd"
)

// viccEvery is how often BenchmarkPCSC sends to vicc as shipped: once
// every viccEvery iterations, since each of its APDUs takes about 44 ms
// (50 samples at -benchtime 2000x).
const viccEvery = 40

// inprocBatch is how many in-process commands BenchmarkPCSC times at once
// per iteration: one takes less than a microsecond, near the clock's own
// cost.
const inprocBatch = 32

// viccFID is the file BenchmarkPCSC creates on vicc's card, and its size.
const (
	viccFID  = 0x2F01
	viccSize = 256
)

// pcscPath is one card reached through pcscd, with the command it gets for
// each operation and the answer it must give.
type pcscPath struct {
	name  string
	card  *scard.Card
	every int                       // sent every so many iterations
	cmd   func(op int) []byte       // the command for operation op
	check func(op int, resp []byte) // fails the benchmark on a wrong answer
	lat   []time.Duration
	total time.Duration
}

// BenchmarkPCSC measures APDU round trips through pcscd and vpcd (a client
// with ebfe/scard, T=1, contact readers) to the simtix card and, in the
// same run, on other slots of the same pcscd:
//
//   - echo: emulator.Echo, a bare card that answers each command with its
//     data, served the same way: what the transport alone costs;
//   - vicc: Debian's Python virtual card (vsmartcard-vpicc, card type
//     iso7816) as shipped, which waits about 44 ms per APDU for vpcd's
//     Nagle stall: sent once every viccEvery iterations;
//   - viccqa: the same vicc with TCP_QUICKACK set on its socket as simtix's
//     cards do (scripts/vicc.sh --quickack): what the Python card itself
//     costs;
//   - inproc: the same commands to the same simtix card (the one pcscd
//     reaches) in-process, through its emulator.Port, in batches of
//     inprocBatch.
//
// vicc has no ticket applet; it gets commands of the same sizes, in and
// out: READ BINARY of as many bytes as STATUS and READ answer, and UPDATE
// BINARY of 200 bytes (with an Le, which vicc needs: it answers 6282).
//
// Each iteration sends the operation once to each path (vicc as shipped
// only every viccEvery), so ns/op is the sum; the metrics are per path:
// APDUs per second, median and 99th-percentile latency; and the ratios of
// medians x-echo (card/echo), pcsc/inproc (card through pcscd/card
// in-process), vicc/card and viccqa/card. vicc is started by the benchmark
// (internal/pcscd, scripts/vicc.sh); if it cannot run, the benchmark fails.
//
//	go test -run '^$' -bench BenchmarkPCSC -benchtime 2000x ./emulator/vpcd/
func BenchmarkPCSC(b *testing.B) {
	ctx := context.Background()
	d := pcscd.Start(b, pcscd.Slots(8))
	f := cardtest.VectorFixture(b)
	card, _ := newCard(b, f.Personalisation(), emulator.Options{})
	serve(b, d, 0, card)
	serve(b, d, 1, &emulator.Echo{})
	vicc := d.StartVICC(ctx, b, 2, pcscd.VICCOptions{})
	viccQA := d.StartVICC(ctx, b, 3, pcscd.VICCOptions{QuickAck: true})

	h, tgt := harness(b, d, 0, f)
	h.Select(applet.Contact)
	h.Sync()
	ticket := h.Issue(0)
	if sw := h.Store(ticket).SW; sw != apdu.SWSuccess {
		b.Fatalf("STORE: %v", sw)
	}
	read, err := cardproto.Read(cardtest.ID(b, ticket)).Bytes()
	if err != nil {
		b.Fatal(err)
	}
	data200 := bytes.Repeat([]byte{0xFF}, 200)
	profile, err := cardproto.TerminalProfile(data200).Bytes()
	if err != nil {
		b.Fatal(err)
	}
	ops := []struct {
		name string
		cmd  []byte
		want apdu.StatusWord // from the card
	}{
		{"STATUS", mustHex(b, statusCmd), apdu.SWSuccess},
		{"READ", read, apdu.SWSuccess},
		// 200 bytes of data in; the echo sends them back, the card
		// refuses them (6700: no TERMINAL PROFILE is that long) after
		// taking them through the whole stack.
		{"200B", profile, apdu.SWWrongLength},
	}

	simtix := tgt.cards[applet.Contact]
	pctx := pcscContext(b)
	echo := connect(b, pctx, d.ContactReader(1), scard.ProtocolT1)
	viccCards := []*scard.Card{
		connect(b, pctx, vicc.Reader(), scard.ProtocolT1),
		connect(b, pctx, viccQA.Reader(), scard.ProtocolT1),
	}

	// The card's answers set the sizes of vicc's reads.
	viccCmds := make([][]byte, len(ops))
	viccWant := make([][]byte, len(ops)) // the answer's length and status word
	for k, op := range ops {
		resp, err := simtix.Transmit(op.cmd)
		if err != nil {
			b.Fatal(err)
		}
		if sw := statusWord(resp); sw != op.want {
			b.Fatalf("%s answered %v", op.name, sw)
		}
		if op.name == "200B" {
			viccCmds[k] = append(append([]byte{0x00, 0xD6, 0x00, 0x00, 200}, data200...), 0x00)
			viccWant[k] = []byte{0x62, 0x82}
			continue
		}
		n := len(resp) - 2
		if n < 1 || n > viccSize {
			b.Fatalf("%s answered %d bytes: no READ BINARY of vicc's file matches", op.name, n)
		}
		viccCmds[k] = []byte{0x00, 0xB0, 0x00, 0x00, byte(n)}
		viccWant[k] = make([]byte, n+2)
		viccWant[k][n], viccWant[k][n+1] = 0x90, 0x00
	}
	for _, c := range viccCards {
		viccFile(b, c)
	}

	checkSW := func(name string, want func(op int) apdu.StatusWord) func(int, []byte) {
		return func(op int, resp []byte) {
			if len(resp) < 2 {
				b.Fatalf("%s to %s: answer %X", ops[op].name, name, resp)
			}
			if sw := statusWord(resp); sw != want(op) {
				b.Fatalf("%s to %s: %v, want %v", ops[op].name, name, sw, want(op))
			}
		}
	}
	checkVICC := func(name string) func(int, []byte) {
		return func(op int, resp []byte) {
			w := viccWant[op]
			if len(resp) != len(w) || !bytes.Equal(resp[len(resp)-2:], w[len(w)-2:]) {
				b.Fatalf("%s to %s: %d bytes ending %X, want %d ending %X",
					ops[op].name, name, len(resp), resp[max(0, len(resp)-2):], len(w), w[len(w)-2:])
			}
		}
	}
	simtixCmd := func(op int) []byte { return ops[op].cmd }
	viccCmd := func(op int) []byte { return viccCmds[op] }
	port := card.Port(applet.Contact)
	inprocCheck := checkSW("the card in-process", func(op int) apdu.StatusWord { return ops[op].want })

	for k, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			paths := []*pcscPath{
				{name: "card", card: simtix, every: 1, cmd: simtixCmd,
					check: checkSW("the card", func(op int) apdu.StatusWord { return ops[op].want })},
				{name: "echo", card: echo, every: 1, cmd: simtixCmd,
					check: checkSW("the echo", func(int) apdu.StatusWord { return apdu.SWSuccess })},
				{name: "viccqa", card: viccCards[1], every: 1, cmd: viccCmd, check: checkVICC("viccqa")},
				{name: "vicc", card: viccCards[0], every: viccEvery, cmd: viccCmd, check: checkVICC("vicc")},
			}
			var inproc []time.Duration // per APDU, averaged over a batch
			var inprocTotal time.Duration
			i := 0
			for b.Loop() {
				for _, p := range paths {
					if i%p.every != 0 {
						continue
					}
					cmd := p.cmd(k)
					t0 := time.Now()
					resp, err := p.card.Transmit(cmd)
					dt := time.Since(t0)
					if err != nil {
						b.Fatalf("%s to %s: %v", op.name, p.name, err)
					}
					p.check(k, resp)
					if len(p.lat) == 0 {
						b.Logf("%s to %s: %d bytes in, %d bytes out", op.name, p.name, len(cmd), len(resp))
					}
					p.lat = append(p.lat, dt)
					p.total += dt
				}
				var resps [inprocBatch][]byte
				t0 := time.Now()
				for j := range resps {
					r, err := port.Transmit(ctx, op.cmd)
					if err != nil {
						b.Fatalf("%s in-process: %v", op.name, err)
					}
					resps[j] = r
				}
				dt := time.Since(t0)
				for _, r := range resps {
					inprocCheck(k, r)
				}
				inproc = append(inproc, dt/inprocBatch)
				inprocTotal += dt
				i++
			}
			med := map[string]time.Duration{}
			for _, p := range paths {
				med[p.name] = report(b, p.name, p.lat, len(p.lat), p.total)
			}
			med["inproc"] = report(b, "inproc", inproc, len(inproc)*inprocBatch, inprocTotal)
			ratio := func(a, c string) { b.ReportMetric(float64(med[a])/float64(med[c]), a+"/"+c) }
			b.ReportMetric(float64(med["card"])/float64(med["echo"]), "x-echo")
			b.ReportMetric(float64(med["card"])/float64(med["inproc"]), "pcsc/inproc")
			ratio("vicc", "card")
			ratio("viccqa", "card")
		})
	}
}

// report reports a path's APDUs per second (n APDUs in total) and the
// median and 99th percentile of lat, and returns the median.
func report(b *testing.B, name string, lat []time.Duration, n int, total time.Duration) time.Duration {
	slices.Sort(lat)
	median := lat[len(lat)/2]
	p99 := lat[min(len(lat)-1, len(lat)*99/100)]
	b.ReportMetric(float64(n)/total.Seconds(), name+"-APDU/s")
	b.ReportMetric(float64(median.Nanoseconds())/1e3, name+"-median-µs")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, name+"-p99-µs")
	return median
}

func statusWord(resp []byte) apdu.StatusWord {
	return apdu.StatusWord(resp[len(resp)-2])<<8 | apdu.StatusWord(resp[len(resp)-1])
}

// viccFile creates a transparent file of viccSize bytes on vicc's card and
// leaves it selected, for READ BINARY and UPDATE BINARY.
func viccFile(b *testing.B, c *scard.Card) {
	b.Helper()
	fcp := []byte{
		0x62, 0x0B,
		0x82, 0x01, 0x01, // a transparent EF
		0x83, 0x02, viccFID >> 8, viccFID & 0xFF,
		0x80, 0x02, viccSize >> 8, viccSize & 0xFF,
	}
	for _, cmd := range [][]byte{
		{0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00},                     // SELECT MF
		append([]byte{0x00, 0xE0, 0x00, 0x00, byte(len(fcp))}, fcp...), // CREATE FILE
		{0x00, 0xA4, 0x02, 0x0C, 0x02, viccFID >> 8, viccFID & 0xFF},   // SELECT EF
	} {
		resp, err := c.Transmit(cmd)
		if err != nil {
			b.Fatalf("vicc: %X: %v", cmd[:4], err)
		}
		if sw := statusWord(resp); sw != apdu.SWSuccess {
			b.Fatalf("vicc: %X answered %v", cmd[:4], sw)
		}
	}
}
