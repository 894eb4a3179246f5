package cardproto

import (
	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

// Ne asking for the largest short response.
const maxNe = apdu.MaxShortNe

func build(f func(b *tlv.Builder)) []byte {
	b := tlv.NewBuilder(nil)
	f(b)
	out, err := b.Bytes()
	if err != nil {
		// Every builder here writes fixed tags and caller data bounded by
		// the types: a failure is a bug, not input.
		panic("cardproto: " + err.Error())
	}
	return out
}

// OnChannel returns cmd sent on logical channel ch (0-3).
func OnChannel(cmd apdu.Command, ch int) apdu.Command {
	cmd.CLA = apdu.WithChannel(cmd.CLA, ch)
	return cmd
}

// Select selects the ticket applet and asks for its FCI.
func Select() apdu.Command {
	return apdu.Command{CLA: ClaISO, INS: InsSelect, P1: 0x04, P2: 0x00, Data: AID, Ne: maxNe}
}

// SelectNoFCI selects the ticket applet and asks for no answer data.
func SelectNoFCI() apdu.Command {
	return apdu.Command{CLA: ClaISO, INS: InsSelect, P1: 0x04, P2: 0x0C, Data: AID}
}

// SelectAID selects another application (the card answers 6A82).
func SelectAID(aid []byte) apdu.Command {
	return apdu.Command{CLA: ClaISO, INS: InsSelect, P1: 0x04, P2: 0x00, Data: aid, Ne: maxNe}
}

// OpenChannel asks the card for a new logical channel.
func OpenChannel() apdu.Command {
	return apdu.Command{CLA: ClaISO, INS: InsManageChannel, P1: 0x00, P2: 0x00, Ne: 1}
}

// CloseChannel closes logical channel n (1-3).
func CloseChannel(n int) apdu.Command {
	return apdu.Command{CLA: ClaISO, INS: InsManageChannel, P1: 0x80, P2: byte(n)}
}

// GetResponse asks for the next ne bytes of a response given in parts.
func GetResponse(ne int) apdu.Command {
	return apdu.Command{CLA: ClaISO, INS: InsGetResponse, Ne: ne}
}

// Status asks for the status template.
func Status() apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsStatus, Ne: maxNe}
}

// TerminalProfile tells the card the handset handles its notifications.
func TerminalProfile(profile []byte) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsTerminalProfile, Data: profile}
}

// DefaultProfile is the terminal profile simtix's handset sends.
var DefaultProfile = []byte{0xFF, 0xFF}

// Fetch asks for the pending notification.
func Fetch() apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsFetch, Ne: maxNe}
}

// TerminalResponse acknowledges notification number with a result (00:
// done).
func TerminalResponse(number, result byte) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsTerminalResponse, Data: build(func(b *tlv.Builder) {
		b.AddBytes(TagCommandDetails, []byte{number, NotificationType, 0x00})
		b.AddBytes(TagDeviceIdentities, []byte{DeviceTerminal, DeviceUICC})
		b.AddBytes(TagResult, []byte{result})
	})}
}

// List asks for the inventory.
func List() apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsList, Ne: maxNe}
}

// Read asks for one ticket and its state.
func Read(id ticketfmt.ID) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsRead, Ne: maxNe,
		Data: build(func(b *tlv.Builder) { b.AddBytes(ticketfmt.TagID, id[:]) })}
}

// Query is what FIND looks for: the first unchecked ticket of Date (and
// Type, Seller, use time not before NotBefore, when given).
type Query struct {
	Type      *uint8
	Seller    string
	Date      ticketfmt.Date
	NotBefore *ticketfmt.TimeOfDay
}

// Find asks for the first unchecked ticket matching q.
func Find(q Query) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsFind, Ne: maxNe, Data: build(func(b *tlv.Builder) {
		if q.Type != nil {
			b.AddUint8(ticketfmt.TagType, *q.Type)
		}
		if q.Seller != "" {
			b.AddString(ticketfmt.TagSeller, q.Seller)
		}
		b.AddBytes(ticketfmt.TagDate, q.Date.AppendBCD(nil))
		if q.NotBefore != nil {
			b.AddBytes(ticketfmt.TagTime, q.NotBefore.AppendBCD(nil))
		}
	})}
}

// Check marks a ticket checked by gate at time when, and asks for the
// receipt over nonce.
func Check(id ticketfmt.ID, gate [cardkeys.GateIDSize]byte, when ticketfmt.DateTime, nonce [cardkeys.NonceSize]byte) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsCheck, Ne: maxNe, Data: build(func(b *tlv.Builder) {
		b.AddBytes(ticketfmt.TagID, id[:])
		b.AddBytes(TagGateID, gate[:])
		b.AddBytes(TagCheckTime, when.AppendBCD(nil))
		b.AddBytes(TagNonce, nonce[:])
	})}
}

// BeginSync starts a sync over the box's challenge.
func BeginSync(challenge [cardkeys.ChallengeSize]byte) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsBeginSync, Ne: maxNe,
		Data: build(func(b *tlv.Builder) { b.AddBytes(TagNonce, challenge[:]) })}
}

// Store stores a ticket under an authorisation.
func Store(ticketE1 []byte, a cardkeys.Authorisation, mac []byte) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsStore, Data: build(func(b *tlv.Builder) {
		b.AddRaw(ticketE1)
		b.AddBytes(TagAuth, a.Bytes())
		b.AddBytes(TagMAC, mac)
	})}
}

// Delete deletes a ticket in the expected state under an authorisation.
func Delete(id ticketfmt.ID, expected byte, a cardkeys.Authorisation, mac []byte) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsDelete, Data: build(func(b *tlv.Builder) {
		b.AddBytes(ticketfmt.TagID, id[:])
		b.AddUint8(TagState, expected)
		b.AddBytes(TagAuth, a.Bytes())
		b.AddBytes(TagMAC, mac)
	})}
}

// PutCertificate gives the card its certificate under an authorisation.
func PutCertificate(certE5 []byte, a cardkeys.Authorisation, mac []byte) apdu.Command {
	return apdu.Command{CLA: ClaProprietary, INS: InsPutCertificate, Data: build(func(b *tlv.Builder) {
		b.AddRaw(certE5)
		b.AddBytes(TagAuth, a.Bytes())
		b.AddBytes(TagMAC, mac)
	})}
}
