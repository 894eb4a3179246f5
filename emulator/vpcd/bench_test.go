package vpcd_test

import (
	"bytes"
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

// BenchmarkPCSC measures APDU round trips through pcscd and vpcd: a client
// (ebfe/scard, T=1, contact reader) to the simtix card, against
// emulator.Echo served the same way on other slots of the same pcscd in
// the same run. Each iteration sends the command once to each, alternating;
// the metrics are per card: APDUs per second, median and 99th-percentile
// latency, and x-echo, the ratio of the card's median to the echo's.
//
//	go test -run '^$' -bench BenchmarkPCSC -benchtime 2000x ./emulator/vpcd/
func BenchmarkPCSC(b *testing.B) {
	d := pcscd.Start(b, pcscd.Slots(4))
	f := cardtest.VectorFixture(b)
	card, _ := newCard(b, f.Personalisation(), emulator.Options{})
	serve(b, d, 0, card)
	serve(b, d, 1, &emulator.Echo{})

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
	profile, err := cardproto.TerminalProfile(bytes.Repeat([]byte{0xFF}, 200)).Bytes()
	if err != nil {
		b.Fatal(err)
	}
	simtix := tgt.cards[applet.Contact]
	echo := connect(b, pcscContext(b), d.ContactReader(1), scard.ProtocolT1)

	for _, op := range []struct {
		name string
		cmd  []byte
		want apdu.StatusWord // from the card, when not a success
	}{
		{"STATUS", mustHex(b, statusCmd), 0},
		{"READ", read, 0},
		// 200 bytes of data in; the echo sends them back, the card
		// refuses them (6700: no TERMINAL PROFILE is that long) after
		// taking them through the whole stack.
		{"200B", profile, apdu.SWWrongLength},
	} {
		b.Run(op.name, func(b *testing.B) {
			var lat [2][]time.Duration
			var total [2]time.Duration
			for b.Loop() {
				for k, c := range []*scard.Card{simtix, echo} {
					t0 := time.Now()
					resp, err := c.Transmit(op.cmd)
					dt := time.Since(t0)
					if err != nil {
						b.Fatal(err)
					}
					if len(resp) < 2 {
						b.Fatalf("%s answered %X", op.name, resp)
					}
					sw := apdu.StatusWord(resp[len(resp)-2])<<8 | apdu.StatusWord(resp[len(resp)-1])
					if !sw.OK() && (k != 0 || sw != op.want) {
						b.Fatalf("%s answered %v", op.name, sw)
					}
					if len(lat[k]) == 0 {
						b.Logf("%s to the %s: %d bytes in, %d bytes out", op.name, []string{"card", "echo"}[k], len(op.cmd), len(resp))
					}
					lat[k] = append(lat[k], dt)
					total[k] += dt
				}
			}
			var median [2]time.Duration
			for k, name := range []string{"card", "echo"} {
				slices.Sort(lat[k])
				median[k] = lat[k][len(lat[k])/2]
				p99 := lat[k][min(len(lat[k])-1, len(lat[k])*99/100)]
				b.ReportMetric(float64(len(lat[k]))/total[k].Seconds(), name+"-APDU/s")
				b.ReportMetric(float64(median[k].Nanoseconds())/1e3, name+"-median-µs")
				b.ReportMetric(float64(p99.Nanoseconds())/1e3, name+"-p99-µs")
			}
			b.ReportMetric(float64(median[0])/float64(median[1]), "x-echo")
		})
	}
}
