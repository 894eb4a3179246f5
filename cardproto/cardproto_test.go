package cardproto_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/ticketfmt"
)

func TestParseVectorSync(t *testing.T) {
	v, err := testvectors.Load()
	require.NoError(t, err)
	a, err := cardproto.ParseSync(v.SyncE4)
	require.NoError(t, err)
	assert.Equal(t, 2048, a.Status.Capacity)
	assert.Equal(t, 2048, a.Status.Free)
	assert.Equal(t, 32, a.Status.MaxTickets)
	assert.Equal(t, 8, a.Status.Overhead)
	assert.Equal(t, uint32(1), a.Status.Epoch)
	assert.Equal(t, uint32(0), a.Status.Counter)
	assert.Equal(t, uint16(0x0100), a.Status.Version)
	assert.Equal(t, v.Serial, a.Status.Serial[:])
	assert.Equal(t, v.CardPublic, a.PublicKey)
	assert.Equal(t, v.InventoryDigestEmpty, a.Digest)
	assert.Equal(t, v.SyncMAC, a.MAC)

	var serial ticketfmt.Serial
	copy(serial[:], v.Serial)
	k, err := cardkeys.Derive(v.MasterSecret, serial)
	require.NoError(t, err)
	require.NoError(t, a.Verify(k, v.SyncChallenge))
	assert.Error(t, a.Verify(k, make([]byte, 16)), "another challenge")
	require.NoError(t, a.CheckInventory(nil), "an empty card lists nothing")
	assert.Error(t, a.CheckInventory([]byte{0xE2, 0x00}))

	assert.Equal(t, 32, a.Status.AvailableTickets())
	assert.Equal(t, 2048, a.Status.AvailableBytes())

	bad := append([]byte(nil), v.SyncE4...)
	bad[len(bad)-17] = 0x9C // the MAC's tag
	_, err = cardproto.ParseSync(bad)
	assert.ErrorIs(t, err, cardproto.ErrMalformed)
	_, err = cardproto.ParseSync(v.SyncE4[:40])
	assert.ErrorIs(t, err, cardproto.ErrMalformed)
}

func TestParseRefusesMalformed(t *testing.T) {
	for name, parse := range map[string]func([]byte) error{
		"status":       func(b []byte) error { _, err := cardproto.ParseStatus(b); return err },
		"FCI":          func(b []byte) error { _, err := cardproto.ParseFCI(b); return err },
		"list":         func(b []byte) error { _, err := cardproto.ParseList(b); return err },
		"ticket state": func(b []byte) error { _, err := cardproto.ParseTicketState(b); return err },
		"notification": func(b []byte) error { _, err := cardproto.ParseNotification(b); return err },
		"receipt":      func(b []byte) error { _, err := cardproto.ParseReceipt(b); return err },
	} {
		for _, in := range [][]byte{{0x01}, {0xE2, 0x05, 0x80}, {0x6F, 0x00, 0x00}, {0xA5, 0x00}, {0xE3, 0x03, 0x8F, 0x01, 0x07}, {0xD0, 0x00}, {0x9D, 0x01, 0x00}} {
			err := parse(in)
			if name == "list" && len(in) == 0 {
				continue
			}
			assert.ErrorIs(t, err, cardproto.ErrMalformed, "%s %X", name, in)
		}
	}
	_, err := cardproto.ParseChannel([]byte{4})
	assert.ErrorIs(t, err, cardproto.ErrMalformed)
	n, err := cardproto.ParseChannel([]byte{3})
	require.NoError(t, err)
	assert.Equal(t, 3, n)
}

// FuzzParse feeds every parser the same bytes: none may panic.
func FuzzParse(f *testing.F) {
	v, err := testvectors.Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v.SyncE4)
	f.Add([]byte{0xE2, 0x03, 0x80, 0x01, 0x00})
	f.Add([]byte{0x6F, 0x0A, 0x84, 0x08, 0xF0, 0x53, 0x49, 0x4D, 0x54, 0x49, 0x58, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = cardproto.ParseStatus(b)
		_, _ = cardproto.ParseFCI(b)
		_, _ = cardproto.ParseList(b)
		_, _ = cardproto.ParseTicketState(b)
		_, _ = cardproto.ParseSync(b)
		_, _ = cardproto.ParseNotification(b)
		_, _ = cardproto.ParseReceipt(b)
	})
}
