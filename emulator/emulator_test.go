package emulator_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/atr"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/imagefile"
	"github.com/simtix/simtix/nvm"
)

// portTarget reaches the card through its in-process ports, as library
// users do.
type portTarget struct{ card *emulator.Card }

func (p portTarget) Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	return p.card.Port(i).Transmit(ctx, cmd)
}

func (p portTarget) Reset(ctx context.Context, i applet.Interface) error {
	_, err := p.card.Port(i).PowerOn(ctx)
	return err
}

// newImageCard personalises a card into an image file in a temporary
// directory and opens it, both interfaces powered on.
func newImageCard(t testing.TB, f cardtest.Fixture, opts emulator.Options) (*emulator.Card, string) {
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, emulator.Create(path, f.Personalisation()))
	opts.T0 = f.T0
	opts.NoSync = true
	c, err := emulator.Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	for _, i := range []applet.Interface{emulator.Contact, emulator.Contactless} {
		_, err := c.PowerOn(context.Background(), i)
		require.NoError(t, err)
	}
	return c, path
}

func TestBehaviourThroughPorts(t *testing.T) {
	cardtest.Run(t, func(t testing.TB, f cardtest.Fixture) cardtest.Target {
		c, _ := newImageCard(t, f, emulator.Options{})
		return portTarget{c}
	})
}

func TestImageKeepsTheCard(t *testing.T) {
	f := cardtest.VectorFixture(t)
	c, path := newImageCard(t, f, emulator.Options{})
	h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return portTarget{c} }, f)
	h.Select(emulator.Contact)
	h.Sync()
	require.Equal(t, apdu.SWSuccess, h.Store(h.Issue(0)).SW)
	want, err := c.Snapshot()
	require.NoError(t, err)

	// In use: a second program gets a clear error, and a reader sees the
	// last saved state.
	_, err = emulator.Open(path, emulator.Options{})
	assert.ErrorIs(t, err, imagefile.ErrLocked)
	got, err := emulator.ReadSnapshot(path)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	require.NoError(t, c.Close())
	c2, err := emulator.Open(path, emulator.Options{NoSync: true})
	require.NoError(t, err)
	defer c2.Close()
	got, err = c2.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, want, got, "the image keeps the non-volatile state")
	assert.Len(t, got.Tickets, 1)

	// Volatile state is gone: power on and nothing is selected.
	_, err = c2.PowerOn(context.Background(), emulator.Contact)
	require.NoError(t, err)
	resp, err := c2.Transmit(context.Background(), emulator.Contact, mustBytes(t, cardproto.List()))
	require.NoError(t, err)
	assert.Equal(t, []byte{0x69, 0x86}, resp)

	assert.ErrorIs(t, emulator.Create(path, f.Personalisation()), imagefile.ErrExists, "card new refuses to overwrite")
}

func TestDamagedImageRefused(t *testing.T) {
	f := cardtest.VectorFixture(t)
	path := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, emulator.Create(path, f.Personalisation()))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)/2] ^= 0x01
	require.NoError(t, os.WriteFile(path, b, 0o600))
	_, err = emulator.Open(path, emulator.Options{})
	assert.ErrorIs(t, err, imagefile.ErrCorrupt)
	_, err = emulator.ReadSnapshot(path)
	assert.ErrorIs(t, err, imagefile.ErrCorrupt)
}

func TestNoPowerNoAnswer(t *testing.T) {
	ram, err := emulator.Personalise(cardtest.VectorFixture(t).Personalisation())
	require.NoError(t, err)
	c, err := emulator.New(ram, emulator.Options{})
	require.NoError(t, err)
	_, err = c.Transmit(context.Background(), emulator.Contact, mustBytes(t, cardproto.Select()))
	assert.ErrorIs(t, err, emulator.ErrNoPower)
	got, err := c.PowerOn(context.Background(), emulator.Contactless)
	require.NoError(t, err)
	assert.Equal(t, atr.Contactless(), got)
	_, err = c.Transmit(context.Background(), emulator.Contact, mustBytes(t, cardproto.Select()))
	assert.ErrorIs(t, err, emulator.ErrNoPower, "powering one interface does not power the other")
	require.NoError(t, c.PowerOff(context.Background(), emulator.Contactless))
	assert.False(t, c.Powered(emulator.Contactless))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.PowerOn(ctx, emulator.Contact)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestATRs(t *testing.T) {
	ram, err := emulator.Personalise(cardtest.VectorFixture(t).Personalisation())
	require.NoError(t, err)
	for _, t0 := range []bool{false, true} {
		c, err := emulator.New(ram, emulator.Options{T0: t0})
		require.NoError(t, err)
		a, err := atr.Parse(c.ATR(emulator.Contact))
		require.NoError(t, err)
		assert.Equal(t, t0, a.Offers(0))
		assert.Equal(t, !t0, a.Offers(1))
	}
}

// TestTearThroughTheImage cuts the power at each write of a STORE made
// through an image file: the program sees the card removed, and the image,
// opened again, holds the card before or after the STORE.
func TestTearThroughTheImage(t *testing.T) {
	f := cardtest.VectorFixture(t)
	// The writes a STORE makes.
	c, _ := newImageCard(t, f, emulator.Options{})
	h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return portTarget{c} }, f)
	h.Select(emulator.Contact)
	h.Sync()
	before := c.Stats()
	ticket := h.Issue(0)
	require.Equal(t, apdu.SWSuccess, h.Store(ticket).SW)
	writes := int(c.Stats().Sub(before).PageWrites)
	require.Positive(t, writes)

	for at := 1; at <= writes; at++ {
		f := cardtest.VectorFixture(t)
		c, path := newImageCard(t, f, emulator.Options{})
		h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return portTarget{c} }, f)
		h.Select(emulator.Contact)
		h.Sync()
		old, err := c.Snapshot()
		require.NoError(t, err)
		store := mustBytes(t, h.StoreCmd(h.Issue(0), h.Auth()))
		require.NoError(t, c.Close())

		// Open with the tear armed; power-on restarts the write count.
		torn, err := emulator.Open(path, emulator.Options{NoSync: true, Fault: nvm.Fault{Kind: nvm.Tear, At: at}})
		require.NoError(t, err)
		_, err = torn.PowerOn(context.Background(), emulator.Contact)
		require.NoError(t, err)
		_, err = torn.Transmit(context.Background(), emulator.Contact, mustBytes(t, cardproto.SelectNoFCI()))
		require.NoError(t, err)
		_, err = torn.Transmit(context.Background(), emulator.Contact, store)
		require.ErrorIs(t, err, emulator.ErrTorn, "write %d", at)
		assert.False(t, torn.Powered(emulator.Contact), "the reader sees the card removed")
		require.NoError(t, torn.Close())

		again, err := emulator.Open(path, emulator.Options{NoSync: true})
		require.NoError(t, err)
		got, err := again.Snapshot()
		require.NoError(t, err)
		require.NoError(t, again.Close())
		// A tear leaves half the page written: even at the last write (the
		// commit point) the new state is not there yet.
		assert.Equal(t, old, got, "write %d: not applied", at)
	}
}

func mustBytes(t *testing.T, c apdu.Command) []byte {
	b, err := c.Bytes()
	require.NoError(t, err)
	return b
}
