package ticketfmt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"

	"github.com/simtix/simtix/tlv"
)

// Tags of the card certificate (card-applet.md).
const (
	TagCertificate tlv.Tag = 0xE5
	TagPublicKey   tlv.Tag = 0x8C
)

// PublicKeySize is the size of an uncompressed P-256 point (04‖X‖Y).
const PublicKeySize = 65

// CertificateSize is the encoded size of a card certificate.
const CertificateSize = 3 + (2 + SerialSize) + (2 + keyIDSize) + (2 + PublicKeySize) + (2 + SignatureSize)

var certFields = [...]field{
	{TagCarrier, SerialSize, SerialSize, true},
	{TagKeyID, keyIDSize, keyIDSize, true},
	{TagPublicKey, PublicKeySize, PublicKeySize, true},
	{TagSignature, SignatureSize, SignatureSize, true},
}

// Certificate is a card certificate: the issuer's signature over the card's
// serial and its ECDSA P-256 public key, E5 {88, 8B, 8C, 9E}.
type Certificate struct {
	// Serial is the card's serial.
	Serial Serial
	// KeyID names the issuer key that signed the certificate.
	KeyID KeyID
	// PublicKey is the card's public key.
	PublicKey *ecdsa.PublicKey
	// Signature is the issuer's raw r‖s signature, or nil before signing.
	Signature []byte
}

// EncodePublicKey returns the uncompressed form 04‖X‖Y of a P-256 key.
func EncodePublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, ErrKeyType
	}
	b, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyType, err)
	}
	return b, nil
}

// DecodePublicKey parses an uncompressed P-256 point and checks it is on the
// curve.
func DecodePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyType, err)
	}
	return pub, nil
}

// Marshal returns the encoding of the signed certificate.
func (c *Certificate) Marshal() ([]byte, error) {
	if len(c.Signature) != SignatureSize {
		return nil, fmt.Errorf("certificate: %w", ErrUnsigned)
	}
	return c.marshal(true)
}

// MarshalUnsigned returns the bytes the issuer signs: E5 without its 9E.
func (c *Certificate) MarshalUnsigned() ([]byte, error) {
	return c.marshal(false)
}

func (c *Certificate) marshal(signed bool) ([]byte, error) {
	pub, err := EncodePublicKey(c.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	b := tlv.NewBuilder(make([]byte, 0, CertificateSize))
	b.AddConstructed(TagCertificate, func(b *tlv.Builder) {
		b.AddBytes(TagCarrier, c.Serial[:])
		b.AddBytes(TagKeyID, c.KeyID[:])
		b.AddBytes(TagPublicKey, pub)
		if signed {
			b.AddBytes(TagSignature, c.Signature)
		}
	})
	return b.Bytes()
}

// UnmarshalCertificate decodes a card certificate as strictly as Unmarshal
// decodes a ticket, and checks that the public key is a point on P-256. It
// does not verify the signature.
func UnmarshalCertificate(b []byte) (*Certificate, error) {
	var c Certificate
	err := decodeTemplate(b, TagCertificate, certFields[:], CertificateSize, func(obj tlv.Object) error {
		var err error
		switch obj.Tag {
		case TagCarrier:
			copy(c.Serial[:], obj.Value)
		case TagKeyID:
			copy(c.KeyID[:], obj.Value)
		case TagPublicKey:
			c.PublicKey, err = DecodePublicKey(obj.Value)
		case TagSignature:
			c.Signature = append([]byte(nil), obj.Value...)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return &c, nil
}

// Sign sets the certificate's key ID from the signer's public key and signs
// it, as Ticket.Sign does.
func (c *Certificate) Sign(signer crypto.Signer) error {
	id, err := KeyIDOf(signer.Public())
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	c.KeyID = id
	tbs, err := c.MarshalUnsigned()
	if err != nil {
		return err
	}
	sig, err := signRaw(signer, tbs)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	c.Signature = sig
	return nil
}

// Verify checks the certificate's signature with the key its key ID names
// in keys.
func (c *Certificate) Verify(keys *KeySet) error {
	if len(c.Signature) != SignatureSize {
		return fmt.Errorf("certificate of card %v: %w", c.Serial, ErrUnsigned)
	}
	pub, err := keys.Lookup(c.KeyID)
	if err != nil {
		return fmt.Errorf("certificate of card %v: %w", c.Serial, err)
	}
	tbs, err := c.MarshalUnsigned()
	if err != nil {
		return err
	}
	if err := VerifyRaw(pub, tbs, c.Signature); err != nil {
		return fmt.Errorf("certificate of card %v: %w", c.Serial, err)
	}
	return nil
}
