package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/emulator/vpcd"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/pcsc"
	"github.com/simtix/simtix/internal/pcscd"
	"github.com/simtix/simtix/internal/systemtest"
)

// pcscInterval is the handset's STATUS polling interval through pcscd: a
// round trip takes about 0.1 ms, so 50 ms keeps the card busy less than
// 1 % of the time and the test quick.
const pcscInterval = 50 * time.Millisecond

// pcscWait bounds the waits for pcscd to notice a card come or go (it
// polls vpcd every 400 ms).
const pcscWait = 10 * time.Second

// TestPCSC runs the scenario through real pcscd, with the server on
// SQLite and on PostgreSQL. The card is an image file served through
// vpcd on two slots; the handset watches on the contact reader with one
// connection held throughout; the gate connects to the contactless reader
// for each check and resets the card, as a card presented to it arrives
// freshly powered, and disconnects after the check.
func TestPCSC(t *testing.T) {
	d := pcscd.Start(t, pcscd.Slots(2*len(databases)))
	for k, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			env := systemtest.New(t, db.options(t))
			r, _ := pcscRig(t, env, d, k, fmt.Sprintf("8986001234567890%04d", k), nil)
			scenario(t, r)
		})
	}
}

// pcscRig creates a card image of env in a temporary directory, opens it
// and serves it as card k of d (through wrap, when not nil) until the test
// ends. The handset reaches it on the contact reader through one
// connection, held until the test ends; each presentation to a gate
// connects to the contactless reader, resets the card there and
// disconnects after the check.
func pcscRig(tb testing.TB, env *systemtest.Env, d *pcscd.Daemon, k int, serial string, wrap func(emulator.Device) emulator.Device) (rig, *emulator.Card) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "card.img")
	env.CreateImage(path, serial, 0)
	card, err := emulator.Open(path, emulator.Options{NoSync: true})
	require.NoError(tb, err)
	var dev emulator.Device = card
	if wrap != nil {
		dev = wrap(card)
	}
	serve(tb, d, k, card, dev)

	contact := connect(tb, d.ContactReader(k))
	snap, err := card.Snapshot()
	require.NoError(tb, err)
	gatePC, err := pcsc.Open()
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, gatePC.Close()) })
	return rig{
		env:     env,
		serial:  snap.Serial,
		contact: contact,
		present: func(ctx context.Context) (hostlib.Transport, func() error, error) {
			c, err := gatePC.Connect(d.ContactlessReader(k), pcsc.ConnectOptions{Protocol: pcsc.T1})
			if err != nil {
				return nil, nil, err
			}
			if err := c.Reconnect(ctx, true); err != nil {
				_ = c.Close()
				return nil, nil, err
			}
			return c, c.Close, nil
		},
		snapshot: card.Snapshot,
		interval: pcscInterval,
	}, card
}

// serve serves dev (which is card, or wraps it) as card k of d until the
// test ends, and waits until pcscd shows it in both readers. When the test
// ends it stops serving, closes the card and waits until both readers are
// empty, so that the next card in these slots is seen as a new one.
func serve(tb testing.TB, d *pcscd.Daemon, k int, card *emulator.Card, dev emulator.Device) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { errc <- vpcd.ServeCard(ctx, dev, d.ContactAddr(k), d.ContactlessAddr(k), vpcd.WithLogger(log)) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			assert.NoError(tb, err, "ServeCard")
		case <-time.After(pcscWait):
			tb.Error("ServeCard did not return after its context was cancelled")
		}
		assert.NoError(tb, card.Close())
		for _, reader := range []string{d.ContactReader(k), d.ContactlessReader(k)} {
			wctx, wcancel := context.WithTimeout(context.Background(), pcscWait)
			assert.NoError(tb, d.WaitCard(wctx, reader, false))
			wcancel()
		}
	})
	for _, reader := range []string{d.ContactReader(k), d.ContactlessReader(k)} {
		wctx, wcancel := context.WithTimeout(context.Background(), pcscWait)
		err := d.WaitCard(wctx, reader, true)
		wcancel()
		require.NoError(tb, err)
	}
}

// connect connects to the card in reader (T=1, shared) through a PC/SC
// context of its own; both are closed when the test ends.
func connect(tb testing.TB, reader string) *pcsc.Card {
	tb.Helper()
	pc, err := pcsc.Open()
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, pc.Close()) })
	c, err := pc.Connect(reader, pcsc.ConnectOptions{Protocol: pcsc.T1})
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, c.Close()) })
	return c
}
