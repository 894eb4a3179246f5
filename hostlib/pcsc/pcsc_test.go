package pcsc_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/emulator/vpcd"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/pcsc"
	"github.com/simtix/simtix/internal/atr"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/pcscd"
	"github.com/simtix/simtix/nvm"
)

// serve personalises a card into an image and serves it on card slot 0 of
// d until the test ends.
func serve(t *testing.T, d *pcscd.Daemon, opts emulator.Options) *emulator.Card {
	f := cardtest.VectorFixture(t)
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, emulator.Create(path, f.Personalisation()))
	opts.NoSync = true
	card, err := emulator.Open(path, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- vpcd.ServeCard(ctx, card, d.ContactAddr(0), d.ContactlessAddr(0)) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = card.Close()
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		_ = d.WaitCard(wctx, d.ContactReader(0), false)
	})
	return card
}

// TestTransportThroughPCSC: the library's PC/SC transport lists the
// readers, waits for the card, and carries the typed client's commands;
// a tear shows as the card removed, a reset by another program as a reset.
func TestTransportThroughPCSC(t *testing.T) {
	d := pcscd.Start(t)
	serve(t, d, emulator.Options{Fault: nvm.Fault{Kind: nvm.Tear, At: 1}})
	pc, err := pcsc.Open()
	require.NoError(t, err)
	defer pc.Close()
	readers, err := pc.Readers()
	require.NoError(t, err)
	assert.Contains(t, readers, d.ContactReader(0))
	assert.Contains(t, readers, d.ContactlessReader(0))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, pc.WaitCard(ctx, d.ContactReader(0)))
	card, err := pc.Connect(d.ContactReader(0), pcsc.ConnectOptions{Protocol: pcsc.T1})
	require.NoError(t, err)
	defer card.Close()
	got, err := card.ATR()
	require.NoError(t, err)
	assert.Equal(t, atr.Contact(false), got)
	assert.Equal(t, "T=1", card.ActiveProtocol())

	a := hostlib.NewApplet(card, hostlib.ClientOptions{})
	fci, err := a.Select(ctx)
	require.NoError(t, err)
	require.NotNil(t, fci.Status)
	entries, _, err := a.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, entries)
	_, err = a.Read(ctx, [10]byte{1})
	assert.ErrorIs(t, err, apdu.ErrNotFound)

	// A reset by another program: the next command says so, and the
	// transport reconnects: the selection is gone, the card still there.
	other, err := pc.Connect(d.ContactReader(0), pcsc.ConnectOptions{Protocol: pcsc.T1})
	require.NoError(t, err)
	require.NoError(t, other.Reconnect(ctx, true))
	require.NoError(t, other.Close())
	_, err = a.Status(ctx)
	require.ErrorIs(t, err, hostlib.ErrCardReset)
	_, err = a.Status(ctx)
	assert.ErrorIs(t, err, apdu.ErrNotSelected)

	// The card's first memory write is cut (tear:1): BEGIN SYNC tears, the
	// card leaves the reader and comes back with the command not applied.
	_, err = a.Select(ctx)
	require.NoError(t, err)
	_, _, err = a.BeginSync(ctx, [16]byte{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, hostlib.ErrCardRemoved), "%v", err)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, pc.WaitRemoved(wctx, d.ContactReader(0)), "the reader sees the card removed")
	require.NoError(t, pc.WaitCard(wctx, d.ContactReader(0)), "and it comes back")
	card2, err := pc.Connect(d.ContactReader(0), pcsc.ConnectOptions{Protocol: pcsc.T1})
	require.NoError(t, err)
	defer card2.Close()
	b := hostlib.NewApplet(card2, hostlib.ClientOptions{})
	_, err = b.Select(ctx)
	require.NoError(t, err)
	st, err := b.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(0), st.Epoch, "the torn BEGIN SYNC is not applied")

	// Waiting respects the context.
	cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer ccancel()
	err = pc.WaitRemoved(cctx, d.ContactReader(0))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = pc.Connect("no such reader", pcsc.ConnectOptions{})
	assert.Error(t, err)
}
