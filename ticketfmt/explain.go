package ticketfmt

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/simtix/simtix/tlv"
)

// FieldInfo explains one data object of an encoded ticket or certificate,
// for people reading the bytes.
type FieldInfo struct {
	// Offset is the offset of the object's first byte.
	Offset int `json:"offset"`
	// Header is the tag and length bytes.
	Header []byte `json:"header"`
	// Value is the value bytes (empty for the template itself).
	Value []byte `json:"value,omitempty"`
	// Tag is the object's tag.
	Tag tlv.Tag `json:"tag"`
	// Name is what the field is.
	Name string `json:"name"`
	// Meaning is the decoded value, as text.
	Meaning string `json:"meaning"`
}

var fieldNames = map[tlv.Tag]string{
	TagID: "ticket ID", TagType: "ticket type", TagSeller: "seller name",
	TagDate: "use date", TagTime: "use time", TagPrice: "price",
	TagSeat: "seat", TagInstructions: "instructions", TagCarrier: "carrier binding (card serial)",
	TagKeyID: "issuer key ID", TagSignature: "issuer signature", TagPublicKey: "card public key",
}

// Explain decodes a ticket (E1) or card certificate (E5) strictly and
// returns its template and each field with its offset, bytes and meaning.
func Explain(b []byte) ([]FieldInfo, error) {
	if len(b) > 0 && tlv.Tag(b[0]) == TagCertificate {
		if _, err := UnmarshalCertificate(b); err != nil {
			return nil, err
		}
	} else if _, err := Unmarshal(b); err != nil {
		return nil, err
	}
	outer, err := tlv.NewReader(b).Next()
	if err != nil {
		return nil, err
	}
	name := "ticket template"
	if outer.Tag == TagCertificate {
		name = "card certificate template"
	}
	out := []FieldInfo{{
		Offset: 0, Header: outer.Raw[:outer.ValueOffset], Tag: outer.Tag, Name: name,
		Meaning: fmt.Sprintf("%d bytes of fields", len(outer.Value)),
	}}
	r := outer.Children()
	for !r.Empty() {
		f, err := r.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, FieldInfo{
			Offset:  f.Offset,
			Header:  f.Raw[:f.ValueOffset-f.Offset],
			Value:   f.Value,
			Tag:     f.Tag,
			Name:    fieldNames[f.Tag],
			Meaning: meaning(f),
		})
	}
	return out, nil
}

func meaning(f tlv.Object) string {
	v := f.Value
	switch f.Tag {
	case TagType:
		return fmt.Sprintf("%d", v[0])
	case TagSeller, TagSeat, TagInstructions:
		return fmt.Sprintf("%q (%d bytes of UTF-8)", string(v), len(v))
	case TagDate:
		d, _ := DecodeDate(v)
		return d.String()
	case TagTime:
		t, _ := DecodeTimeOfDay(v)
		return t.String()
	case TagPrice:
		return fmt.Sprintf("%d minor units", binary.BigEndian.Uint32(v))
	case TagSignature:
		return "ECDSA P-256 r‖s over the template without this field"
	case TagPublicKey:
		return "uncompressed P-256 point"
	default:
		return hex.EncodeToString(v)
	}
}
