package pcscd

import (
	"context"
	"testing"
	"time"

	"github.com/ebfe/scard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStartVICC: Debian's vicc runs as a card in the asked slot, as
// shipped and with TCP_QUICKACK, and answers through pcscd; it leaves the
// slot when the test ends; when it cannot reach vpcd, starting it fails
// with the reason.
func TestStartVICC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := Start(t, Slots(4))
	t.Run("runs", func(t *testing.T) {
		for card, quickack := range []bool{false, true} {
			v := d.StartVICC(ctx, t, card, VICCOptions{QuickAck: quickack})
			assert.Equal(t, d.ContactReader(card), v.Reader())
			assert.FileExists(t, v.LogFile())
			c, err := scard.EstablishContext()
			require.NoError(t, err)
			card, err := c.Connect(v.Reader(), scard.ShareShared, scard.ProtocolT1)
			require.NoError(t, err)
			// SELECT the master file by its identifier.
			resp, err := card.Transmit([]byte{0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00})
			require.NoError(t, err)
			assert.Equal(t, []byte{0x90, 0x00}, resp, "quickack %v", quickack)
			require.NoError(t, card.Disconnect(scard.LeaveCard))
			require.NoError(t, c.Release())
		}
	})
	// The subtest's cleanups stopped vicc: the slots are free again.
	for card := range 2 {
		require.NoError(t, WaitCard(ctx, d.ContactReader(card), false))
	}

	t.Run("cannot reach vpcd", func(t *testing.T) {
		v := &VICC{reader: d.ContactReader(1), log: t.TempDir() + "/vicc.log"}
		root, err := repoRoot()
		require.NoError(t, err)
		err = v.start(ctx, t, root, 1, VICCOptions{}) // nothing listens on port 1
		require.Error(t, err)
		assert.Contains(t, err.Error(), "vicc exited (status 0) before pcscd saw its card")
	})
}
