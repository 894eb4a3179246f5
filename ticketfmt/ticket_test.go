package ticketfmt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/tlv"
)

// deterministic signs with RFC 6979 nonces (a nil random source), as the
// independent implementation behind vectors.json did.
type deterministic struct{ *ecdsa.PrivateKey }

func (d deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.PrivateKey.Sign(nil, digest, opts)
}

func vectors(t testing.TB) *testvectors.Vectors {
	t.Helper()
	v, err := testvectors.Load()
	require.NoError(t, err)
	return v
}

func issuerKey(t testing.TB, v *testvectors.Vectors) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.IssuerPrivateScalar)
	require.NoError(t, err)
	return k
}

func vectorTicket(t testing.TB, v *testvectors.Vectors) *Ticket {
	t.Helper()
	f := v.TicketFields
	id, err := ParseID(f.ID)
	require.NoError(t, err)
	date, err := ParseDate(f.Date)
	require.NoError(t, err)
	tod, err := ParseTimeOfDay(f.Time)
	require.NoError(t, err)
	var serial Serial
	copy(serial[:], v.Serial)
	return &Ticket{
		ID: id, Type: uint8(f.Type), Seller: f.Seller, Date: date, Time: tod,
		Price: f.Price, Seat: f.Seat, Instructions: f.Instructions, Carrier: serial,
	}
}

func TestVectorKeyID(t *testing.T) {
	v := vectors(t)
	k := issuerKey(t, v)
	pub, err := EncodePublicKey(&k.PublicKey)
	require.NoError(t, err)
	assert.Equal(t, v.IssuerPublic, pub)
	id, err := KeyIDOf(&k.PublicKey)
	require.NoError(t, err)
	assert.Equal(t, v.IssuerKeyID, id[:])
}

func TestVectorTicket(t *testing.T) {
	v := vectors(t)
	k := issuerKey(t, v)
	tk := vectorTicket(t, v)
	require.NoError(t, tk.Sign(deterministic{k}))

	unsigned, err := tk.MarshalUnsigned()
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(v.TicketUnsignedE1), hex.EncodeToString(unsigned))
	assert.Equal(t, v.TicketSignature, tk.Signature, "RFC 6979 signature")

	enc, err := tk.Marshal()
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(v.TicketE1), hex.EncodeToString(enc))
	assert.Len(t, enc, v.TicketLength)
	assert.Equal(t, v.TicketLength, tk.Size())

	keys, err := NewKeySet(&k.PublicKey)
	require.NoError(t, err)
	dec, err := Unmarshal(v.TicketE1)
	require.NoError(t, err)
	assert.Equal(t, tk, dec)
	require.NoError(t, dec.Verify(keys))
}

func TestSignWithRandomNonceVerifies(t *testing.T) {
	v := vectors(t)
	k := issuerKey(t, v)
	tk := vectorTicket(t, v)
	require.NoError(t, tk.Sign(k))
	keys, err := NewKeySet(&k.PublicKey)
	require.NoError(t, err)
	require.NoError(t, tk.Verify(keys))
}

func TestVerifyRefuses(t *testing.T) {
	v := vectors(t)
	k := issuerKey(t, v)
	keys, err := NewKeySet(&k.PublicKey)
	require.NoError(t, err)

	tk, err := Unmarshal(v.TicketE1)
	require.NoError(t, err)
	tk.Price++
	assert.ErrorIs(t, tk.Verify(keys), ErrBadSignature, "changed field")

	tk, err = Unmarshal(v.TicketE1)
	require.NoError(t, err)
	tk.Signature[5] ^= 1
	assert.ErrorIs(t, tk.Verify(keys), ErrBadSignature, "changed signature")

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherKeys, err := NewKeySet(&other.PublicKey)
	require.NoError(t, err)
	tk, err = Unmarshal(v.TicketE1)
	require.NoError(t, err)
	assert.ErrorIs(t, tk.Verify(otherKeys), ErrUnknownKey)

	// Signed by an unknown key that claims the trusted key's ID.
	forged := vectorTicket(t, v)
	require.NoError(t, forged.Sign(other))
	forged.KeyID = tk.KeyID
	assert.ErrorIs(t, forged.Verify(keys), ErrBadSignature)

	tk.Signature = nil
	assert.ErrorIs(t, tk.Verify(keys), ErrUnsigned)
	_, err = tk.Marshal()
	assert.ErrorIs(t, err, ErrUnsigned)
}

func TestSignRefusesOtherKeyTypes(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	tk := vectorTicket(t, vectors(t))
	assert.ErrorIs(t, tk.Sign(k), ErrKeyType)
}

// tpl wraps hex-encoded fields in an E1 template.
func tpl(t testing.TB, fields ...string) []byte {
	t.Helper()
	raw, err := hex.DecodeString(strings.ReplaceAll(strings.Join(fields, ""), " ", ""))
	require.NoError(t, err)
	b := tlv.NewBuilder(nil)
	b.AddConstructed(TagTicket, func(b *tlv.Builder) { b.AddRaw(raw) })
	out, err := b.Bytes()
	require.NoError(t, err)
	return out
}

var (
	fID      = "800a 544b5400000000000001"
	fType    = "8101 01"
	fSeller  = "8203 414243"
	fDate    = "8304 20261205"
	fTime    = "8402 1930"
	fPrice   = "8504 00009470"
	fSeat    = "8602 4131"
	fInstr   = "8701 78"
	fCarrier = "880a 89860012345678901234"
	fKeyID   = "8b04 9f12b0b6"
	fSig     = "9e40 " + strings.Repeat("11", 64)
)

func TestUnmarshalAcceptsMinimalAndFullTickets(t *testing.T) {
	minimal := tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig)
	tk, err := Unmarshal(minimal)
	require.NoError(t, err)
	assert.Equal(t, "ABC", tk.Seller)
	assert.Empty(t, tk.Seat)
	assert.Equal(t, Date{2026, 12, 5}, tk.Date)
	assert.Equal(t, TimeOfDay{19, 30}, tk.Time)
	assert.Equal(t, uint32(38000), tk.Price)
	re, err := tk.Marshal()
	require.NoError(t, err)
	assert.Equal(t, minimal, re)
	assert.Equal(t, FixedSize+5+2, len(minimal), "fixed fields + seller + E1 header")

	full := tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, fSeat, fInstr, fCarrier, fKeyID, fSig)
	tk, err = Unmarshal(full)
	require.NoError(t, err)
	assert.Equal(t, "A1", tk.Seat)
	assert.Equal(t, "x", tk.Instructions)
	re, err = tk.Marshal()
	require.NoError(t, err)
	assert.Equal(t, full, re)
}

func TestUnmarshalRejects(t *testing.T) {
	long := func(tag string, n int) string {
		return tag + hex.EncodeToString([]byte{byte(n)}) + strings.Repeat("41", n)
	}
	tests := []struct {
		name string
		in   []byte
		want error
		tag  tlv.Tag
	}{
		{"unknown tag", tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, fCarrier, "8901 00", fKeyID, fSig), ErrUnknownTag, 0x89},
		{"multi-byte unknown tag", tpl(t, fID, "9f0101 00", fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrUnknownTag, 0x9F01},
		{"constructed tag", tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig, "a000"), ErrUnknownTag, 0xA0},
		{"out of order", tpl(t, fType, fID, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrOrder, TagID},
		{"duplicate", tpl(t, fID, fType, fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrDuplicate, TagType},
		{"missing price", tpl(t, fID, fType, fSeller, fDate, fTime, fCarrier, fKeyID, fSig), ErrMissing, TagPrice},
		{"missing signature", tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID), ErrMissing, TagSignature},
		{"empty seat", tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, "8600", fCarrier, fKeyID, fSig), ErrEmpty, TagSeat},
		{"empty seller", tpl(t, fID, fType, "8200", fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrSize, TagSeller},
		{"seller too long", tpl(t, fID, fType, long("82", 65), fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrSize, TagSeller},
		{"seat too long", tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, long("86", 33), fCarrier, fKeyID, fSig), ErrSize, TagSeat},
		{"instructions too long", tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, "8781 81"+strings.Repeat("41", 129), fCarrier, fKeyID, fSig), ErrSize, TagInstructions},
		{"short ID", tpl(t, "8009 544b54000000000000", fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrSize, TagID},
		{"long type", tpl(t, fID, "8102 0101", fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrSize, TagType},
		{"short signature", tpl(t, fID, fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, "9e3f"+strings.Repeat("11", 63)), ErrSize, TagSignature},
		{"bad UTF-8", tpl(t, fID, fType, "8202 c328", fDate, fTime, fPrice, fCarrier, fKeyID, fSig), ErrUTF8, TagSeller},
		{"February 30", tpl(t, fID, fType, fSeller, "8304 20260230", fTime, fPrice, fCarrier, fKeyID, fSig), ErrNoSuchDate, TagDate},
		{"month 13", tpl(t, fID, fType, fSeller, "8304 20261301", fTime, fPrice, fCarrier, fKeyID, fSig), ErrNoSuchDate, TagDate},
		{"BCD digit A in date", tpl(t, fID, fType, fSeller, "8304 2026120a", fTime, fPrice, fCarrier, fKeyID, fSig), ErrBCD, TagDate},
		{"24:61", tpl(t, fID, fType, fSeller, fDate, "8402 2461", fPrice, fCarrier, fKeyID, fSig), ErrNoSuchDate, TagTime},
		{"24:00", tpl(t, fID, fType, fSeller, fDate, "8402 2400", fPrice, fCarrier, fKeyID, fSig), ErrNoSuchDate, TagTime},
		{"BCD digit F in time", tpl(t, fID, fType, fSeller, fDate, "8402 1f00", fPrice, fCarrier, fKeyID, fSig), ErrBCD, TagTime},
		{"non-minimal length", tpl(t, fID, fType, "828103 414243", fDate, fTime, fPrice, fCarrier, fKeyID, fSig), tlv.ErrNonMinimalLength, TagSeller},
		{"indefinite length", tpl(t, fID, fType, "8280"), tlv.ErrIndefiniteLength, TagSeller},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.in)
			require.ErrorIs(t, err, tc.want)
			var te *tlv.Error
			require.ErrorAs(t, err, &te)
			assert.Equal(t, tc.tag, te.Tag)
			assert.Contains(t, err.Error(), "tag "+tc.tag.String())
			if errors.Is(err, ErrMissing) {
				assert.Equal(t, len(tc.in), te.Offset, "a missing field is reported at the end of the template")
			} else {
				var tagBytes []byte
				if tc.tag > 0xFF {
					tagBytes = []byte{byte(tc.tag >> 8), byte(tc.tag)}
				} else {
					tagBytes = []byte{byte(tc.tag)}
				}
				require.Less(t, te.Offset, len(tc.in))
				assert.True(t, bytes.HasPrefix(tc.in[te.Offset:], tagBytes), "offset %d must point at tag %v", te.Offset, tc.tag)
			}
		})
	}
}

func TestUnmarshalRejectsOuterProblems(t *testing.T) {
	v := vectors(t)
	good := v.TicketE1

	_, err := Unmarshal(append(append([]byte(nil), good...), 0x00))
	assert.ErrorIs(t, err, tlv.ErrUnexpected, "trailing byte")

	other := append([]byte(nil), good...)
	other[0] = 0xE2
	_, err = Unmarshal(other)
	assert.ErrorIs(t, err, tlv.ErrUnexpected, "another template")

	_, err = Unmarshal(good[:len(good)-1])
	assert.ErrorIs(t, err, tlv.ErrTruncated)

	_, err = Unmarshal(nil)
	assert.Error(t, err)

	_, err = Unmarshal(make([]byte, MaxSize+1))
	assert.ErrorIs(t, err, ErrSize)
}

func TestMarshalValidates(t *testing.T) {
	v := vectors(t)
	base := func() *Ticket { tk := vectorTicket(t, v); tk.Signature = make([]byte, 64); return tk }
	tests := []struct {
		name string
		mod  func(*Ticket)
		want error
	}{
		{"no seller", func(tk *Ticket) { tk.Seller = "" }, ErrMissing},
		{"long seller", func(tk *Ticket) { tk.Seller = strings.Repeat("a", 65) }, ErrSize},
		{"long seat", func(tk *Ticket) { tk.Seat = strings.Repeat("a", 33) }, ErrSize},
		{"long instructions", func(tk *Ticket) { tk.Instructions = strings.Repeat("a", 129) }, ErrSize},
		{"bad UTF-8", func(tk *Ticket) { tk.Seat = "\xff" }, ErrUTF8},
		{"bad date", func(tk *Ticket) { tk.Date.Day = 31; tk.Date.Month = 4 }, ErrNoSuchDate},
		{"bad time", func(tk *Ticket) { tk.Time.Minute = 60 }, ErrNoSuchDate},
		{"short signature", func(tk *Ticket) { tk.Signature = tk.Signature[:63] }, ErrUnsigned},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk := base()
			tc.mod(tk)
			_, err := tk.Marshal()
			assert.ErrorIs(t, err, tc.want)
		})
	}
	tk := base()
	tk.Seller = strings.Repeat("é", 32) // 64 bytes
	tk.Seat = strings.Repeat("a", 32)
	tk.Instructions = strings.Repeat("b", 128)
	enc, err := tk.Marshal()
	require.NoError(t, err)
	assert.Len(t, enc, MaxSize, "the largest ticket")
	back, err := Unmarshal(enc)
	require.NoError(t, err)
	assert.Equal(t, tk, back)
}

func TestIDsParse(t *testing.T) {
	s, err := ParseSerial("8986 0012 3456 7890 1234")
	require.NoError(t, err)
	assert.Equal(t, "89860012345678901234", s.String())
	s2, err := ParseSerial("89860012345678901234")
	require.NoError(t, err)
	assert.Equal(t, s, s2)
	id, err := ParseID("544B5400000000000001")
	require.NoError(t, err)
	assert.Equal(t, "544b5400000000000001", id.String())
	for _, bad := range []string{"", "8986", "89860012345678901234ff", "8986001234567890123g", "8986001234567890123"} {
		_, err := ParseSerial(bad)
		assert.ErrorIs(t, err, ErrHex, "%q", bad)
	}
	_, err = ParseKeyID("9f12b0b6")
	assert.NoError(t, err)
}

// FuzzUnmarshal: the decoder never panics, and whatever it accepts
// re-encodes to the same bytes and passes Validate.
func FuzzUnmarshal(f *testing.F) {
	v, err := testvectors.Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v.TicketE1)
	f.Add(v.TicketUnsignedE1)
	f.Add(tpl(f, fID, fType, fSeller, fDate, fTime, fPrice, fCarrier, fKeyID, fSig))
	f.Add(tpl(f, fID, fType, fSeller, fDate, fTime, fPrice, fSeat, fInstr, fCarrier, fKeyID, fSig))
	f.Fuzz(func(t *testing.T, in []byte) {
		tk, err := Unmarshal(in)
		if err != nil {
			var te *tlv.Error
			if !errors.As(err, &te) {
				t.Fatalf("error without tag and offset: %v", err)
			}
			return
		}
		if !utf8.ValidString(tk.Seller) || tk.Seller == "" {
			t.Fatalf("accepted seller %q", tk.Seller)
		}
		out, err := tk.Marshal()
		if err != nil {
			t.Fatalf("accepted ticket does not re-encode: %v", err)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
		if tk.Size() != len(in) {
			t.Fatalf("Size %d, encoded %d", tk.Size(), len(in))
		}
	})
}
