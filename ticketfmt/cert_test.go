package ticketfmt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/tlv"
)

func TestVectorCertificate(t *testing.T) {
	v := vectors(t)
	issuer := issuerKey(t, v)
	card, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.CardPrivateScalar)
	require.NoError(t, err)
	pub, err := EncodePublicKey(&card.PublicKey)
	require.NoError(t, err)
	require.Equal(t, v.CardPublic, pub)

	c := &Certificate{PublicKey: &card.PublicKey}
	copy(c.Serial[:], v.Serial)
	require.NoError(t, c.Sign(deterministic{issuer}))
	enc, err := c.Marshal()
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(v.CardCertificateE5), hex.EncodeToString(enc))
	assert.Len(t, enc, CertificateSize)

	dec, err := UnmarshalCertificate(v.CardCertificateE5)
	require.NoError(t, err)
	assert.Equal(t, c.Serial, dec.Serial)
	assert.True(t, c.PublicKey.Equal(dec.PublicKey))
	keys, err := NewKeySet(&issuer.PublicKey)
	require.NoError(t, err)
	require.NoError(t, dec.Verify(keys))

	dec.Serial[0] ^= 1
	assert.ErrorIs(t, dec.Verify(keys), ErrBadSignature)
}

func TestUnmarshalCertificateRejects(t *testing.T) {
	v := vectors(t)
	good := v.CardCertificateE5
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }

	// The public key starts at offset 3+12+6+2 = 23: 04 X Y.
	offCurve := mutate(func(b []byte) []byte { b[23+64] ^= 1; return b })
	_, err := UnmarshalCertificate(offCurve)
	assert.ErrorIs(t, err, ErrKeyType, "point not on the curve")
	var te *tlv.Error
	require.ErrorAs(t, err, &te)
	assert.Equal(t, TagPublicKey, te.Tag)
	assert.Equal(t, 21, te.Offset)

	compressed := mutate(func(b []byte) []byte { b[23] = 0x02; return b })
	_, err = UnmarshalCertificate(compressed)
	assert.ErrorIs(t, err, ErrKeyType)

	_, err = UnmarshalCertificate(append(append([]byte(nil), good...), 0))
	assert.Error(t, err, "trailing byte")

	_, err = UnmarshalCertificate(good[:len(good)-1])
	assert.ErrorIs(t, err, tlv.ErrTruncated)

	asTicket := mutate(func(b []byte) []byte { b[0] = 0xE1; return b })
	_, err = UnmarshalCertificate(asTicket)
	assert.ErrorIs(t, err, tlv.ErrUnexpected)

	// Fields swapped: 8B before 88.
	swapped := []byte{0xE5, 0x81, 0x97}
	swapped = append(swapped, good[15:21]...)
	swapped = append(swapped, good[3:15]...)
	swapped = append(swapped, good[21:]...)
	require.Len(t, swapped, len(good))
	_, err = UnmarshalCertificate(swapped)
	assert.ErrorIs(t, err, ErrOrder)
}

func TestKeySetPEM(t *testing.T) {
	v := vectors(t)
	a := issuerKey(t, v)
	b, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	set, err := NewKeySet(&a.PublicKey, &b.PublicKey)
	require.NoError(t, err)
	pemBytes, err := set.MarshalPEM()
	require.NoError(t, err)
	assert.Contains(t, string(pemBytes), "Key-ID: "+hex.EncodeToString(v.IssuerKeyID))

	back, err := ParseKeySetPEM(pemBytes)
	require.NoError(t, err)
	assert.Equal(t, set.IDs(), back.IDs())
	var id KeyID
	copy(id[:], v.IssuerKeyID)
	got, err := back.Lookup(id)
	require.NoError(t, err)
	assert.True(t, a.PublicKey.Equal(got))

	_, err = ParseKeySetPEM(nil)
	assert.Error(t, err)
	_, err = ParseKeySetPEM(append(pemBytes, []byte("garbage")...))
	assert.Error(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	bad := &KeySet{}
	_, err = bad.Add(&p384.PublicKey)
	assert.ErrorIs(t, err, ErrKeyType)
}

// FuzzUnmarshalCertificate: never panics; what is accepted re-encodes to
// the same bytes.
func FuzzUnmarshalCertificate(f *testing.F) {
	v, err := testvectors.Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v.CardCertificateE5)
	f.Add(v.CardCertificateE5[:100])
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := UnmarshalCertificate(in)
		if err != nil {
			var te *tlv.Error
			if !errors.As(err, &te) {
				t.Fatalf("error without tag and offset: %v", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("accepted certificate does not re-encode: %v", err)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
	})
}
