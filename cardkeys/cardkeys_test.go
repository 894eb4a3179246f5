package cardkeys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

func setup(t *testing.T) (*testvectors.Vectors, Keys, ticketfmt.Serial) {
	t.Helper()
	v, err := testvectors.Load()
	require.NoError(t, err)
	var serial ticketfmt.Serial
	copy(serial[:], v.Serial)
	k, err := Derive(v.MasterSecret, serial)
	require.NoError(t, err)
	return v, k, serial
}

func TestVectorKeys(t *testing.T) {
	v, k, _ := setup(t)
	assert.Equal(t, v.KAuth, k.Auth[:])
	assert.Equal(t, v.KStore, k.Store[:])
	_, err := Derive(v.MasterSecret[:31], ticketfmt.Serial{})
	assert.ErrorIs(t, err, ErrMasterKey)
}

func TestVectorMACs(t *testing.T) {
	v, k, serial := setup(t)
	a, err := ParseAuthorisation(v.Authorisation9A)
	require.NoError(t, err)
	assert.Equal(t, Authorisation{Epoch: v.Epoch, Counter: v.Counter}, a)
	assert.Equal(t, v.Authorisation9A, a.Bytes())

	assert.Equal(t, v.StoreMAC, StoreMAC(k, serial, a, v.TicketE1))
	tk, err := ticketfmt.Unmarshal(v.TicketE1)
	require.NoError(t, err)
	assert.Equal(t, v.DeleteMACChecked, DeleteMAC(k, serial, a, tk.ID, 0x01))
	assert.NotEqual(t, v.DeleteMACChecked, DeleteMAC(k, serial, a, tk.ID, 0x00))
	assert.Equal(t, v.CertMAC, CertMAC(k, serial, a, v.CardCertificateE5))

	// The sync MAC covers the value of E4 before its 9B field.
	e4, err := tlv.Single(v.SyncE4, 0xE4)
	require.NoError(t, err)
	r := e4.Children()
	for _, tag := range []tlv.Tag{0xA5, 0x8C, 0x8D} {
		_, err := r.Expect(tag)
		require.NoError(t, err)
	}
	vBytes := e4.Value[:r.Offset()-e4.ValueOffset]
	m, err := r.Expect(0x9B)
	require.NoError(t, err)
	assert.Equal(t, v.SyncMAC, m.Value)
	assert.Equal(t, v.SyncMAC, SyncMAC(k, v.SyncChallenge, vBytes))

	assert.True(t, Equal(v.StoreMAC, StoreMAC(k, serial, a, v.TicketE1)))
	a.Counter++
	assert.False(t, Equal(v.StoreMAC, StoreMAC(k, serial, a, v.TicketE1)))
	_, err = ParseAuthorisation(v.Authorisation9A[:7])
	assert.Error(t, err)
}

func TestVectorReceipt(t *testing.T) {
	v, _, serial := setup(t)
	card, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.CardPrivateScalar)
	require.NoError(t, err)
	msg := ReceiptMessage(serial, v.TicketE1, v.CheckGateID, v.CheckTime, v.CheckNonce)
	sig, err := SignReceipt(card, msg)
	require.NoError(t, err)
	assert.Equal(t, v.CheckReceipt9D, sig, "RFC 6979 receipt")
	require.NoError(t, VerifyReceipt(&card.PublicKey, msg, v.CheckReceipt9D))

	other := ReceiptMessage(serial, v.TicketE1, v.CheckGateID, v.CheckTime, make([]byte, 16))
	assert.ErrorIs(t, VerifyReceipt(&card.PublicKey, other, v.CheckReceipt9D), ticketfmt.ErrBadSignature)
}
