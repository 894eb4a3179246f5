package vpcd_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebfe/scard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/emulator/vpcd"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/pcscd"
)

// APDUs of the tests, in hex.
const (
	selectSimtix  = "00A4040008F053494D54495801"
	selectUnknown = "00A4040007A0000000031010"
	statusCmd     = "80F2000000"
)

// testWait bounds every wait of these tests: pcscd notices a card within
// one presence poll (400 ms).
const testWait = 10 * time.Second

// newCard personalises f into an image file in a temporary directory and
// opens it (closed when the test ends, after the serving has stopped).
func newCard(t testing.TB, p applet.Personalisation, opts emulator.Options) (*emulator.Card, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, emulator.Create(path, p))
	opts.NoSync = true
	c, err := emulator.Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	return c, path
}

// testLogger logs to the test's output (shown with -v or on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// serve serves dev as card k of d (both interfaces) until the test ends,
// and waits until pcscd shows it in both readers.
func serve(t testing.TB, d *pcscd.Daemon, k int, dev emulator.Device, opts ...vpcd.Option) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	opts = append([]vpcd.Option{vpcd.WithLogger(testLogger(t))}, opts...)
	go func() { errc <- vpcd.ServeCard(ctx, dev, d.ContactAddr(k), d.ContactlessAddr(k), opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err, "ServeCard")
		case <-time.After(testWait):
			t.Error("ServeCard did not return after its context was cancelled")
		}
	})
	waitCard(t, d.ContactReader(k), true)
	waitCard(t, d.ContactlessReader(k), true)
}

func waitCard(t testing.TB, reader string, present bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	require.NoError(t, pcscd.WaitCard(ctx, reader, present))
}

// pcscContext is a PC/SC context released when the test ends.
func pcscContext(t testing.TB) *scard.Context {
	t.Helper()
	c, err := scard.EstablishContext()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Release() })
	return c
}

// connect connects to the card in reader, shared, with proto.
func connect(t testing.TB, c *scard.Context, reader string, proto scard.Protocol) *scard.Card {
	t.Helper()
	card, err := c.Connect(reader, scard.ShareShared, proto)
	require.NoError(t, err, "connect to %q", reader)
	t.Cleanup(func() { _ = card.Disconnect(scard.LeaveCard) })
	return card
}

// send sends an APDU given in hex and returns the response in upper-case
// hex.
func send(t testing.TB, card *scard.Card, cmd string) string {
	t.Helper()
	b, err := hex.DecodeString(cmd)
	require.NoError(t, err)
	resp, err := card.Transmit(b)
	require.NoError(t, err, "transmit %s", cmd)
	return strings.ToUpper(hex.EncodeToString(resp))
}

// pcscTarget reaches a card's two interfaces through PC/SC, for the
// behaviour harness.
type pcscTarget struct {
	cards [2]*scard.Card
	proto [2]scard.Protocol
}

func (p *pcscTarget) Transmit(_ context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	return p.cards[i].Transmit(cmd)
}

func (p *pcscTarget) Reset(_ context.Context, i applet.Interface) error {
	return p.cards[i].Reconnect(scard.ShareShared, p.proto[i], scard.UnpowerCard)
}

// target connects to card k of d on both interfaces (with T=0 on the
// contact one if t0).
func target(t testing.TB, d *pcscd.Daemon, k int, t0 bool) *pcscTarget {
	t.Helper()
	c := pcscContext(t)
	proto := scard.Protocol(scard.ProtocolT1)
	if t0 {
		proto = scard.ProtocolT0
	}
	tgt := &pcscTarget{proto: [2]scard.Protocol{proto, scard.ProtocolT1}}
	tgt.cards[applet.Contact] = connect(t, c, d.ContactReader(k), tgt.proto[applet.Contact])
	tgt.cards[applet.Contactless] = connect(t, c, d.ContactlessReader(k), tgt.proto[applet.Contactless])
	return tgt
}

// harness connects to card k of d on both interfaces and returns the
// behaviour harness over PC/SC for fixture f.
func harness(t testing.TB, d *pcscd.Daemon, k int, f cardtest.Fixture) (*cardtest.Harness, *pcscTarget) {
	t.Helper()
	tgt := target(t, d, k, f.T0)
	h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return tgt }, f)
	return h, tgt
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}
