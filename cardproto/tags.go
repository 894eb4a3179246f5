// Package cardproto is the ticket applet's protocol as the host sees it:
// the command APDUs of card-applet.md, built from typed arguments, and the
// card's response objects, parsed strictly into typed values.
//
// It does no I/O: hostlib sends what it builds, the server and the gate
// check what it parses. The card side is the applet package.
package cardproto

import "github.com/simtix/simtix/tlv"

// AID is the ticket applet's application identifier: F0 "SIMTIX" 01.
var AID = []byte{0xF0, 0x53, 0x49, 0x4D, 0x54, 0x49, 0x58, 0x01}

// Instructions of the card's commands.
const (
	InsSelect           = 0xA4
	InsManageChannel    = 0x70
	InsGetResponse      = 0xC0
	InsStatus           = 0xF2
	InsTerminalProfile  = 0x10
	InsFetch            = 0x12
	InsTerminalResponse = 0x14
	InsList             = 0x30
	InsRead             = 0x32
	InsFind             = 0x34
	InsCheck            = 0x36
	InsStore            = 0x38
	InsDelete           = 0x3A
	InsBeginSync        = 0x3C
	InsPutCertificate   = 0x3E
)

// Classes: ISO/IEC 7816-4 commands and the card's own.
const (
	ClaISO         = 0x00
	ClaProprietary = 0x80
)

// Tags of the applet's objects.
const (
	TagFCI          tlv.Tag = 0x6F
	TagAID          tlv.Tag = 0x84
	TagStatus       tlv.Tag = 0xA5
	TagListEntry    tlv.Tag = 0xE2
	TagTicketState  tlv.Tag = 0xE3
	TagSync         tlv.Tag = 0xE4
	TagNotification tlv.Tag = 0xD0
	TagCardKey      tlv.Tag = 0x8C
	TagDigest       tlv.Tag = 0x8D
	TagLength       tlv.Tag = 0x8E
	TagState        tlv.Tag = 0x8F
	TagGateID       tlv.Tag = 0x90
	TagCheckTime    tlv.Tag = 0x91
	TagNonce        tlv.Tag = 0x92
	TagAuth         tlv.Tag = 0x9A
	TagMAC          tlv.Tag = 0x9B
	TagReceipt      tlv.Tag = 0x9D
)

// Tags inside the status template A5.
const (
	TagCapacity    tlv.Tag = 0x80
	TagFree        tlv.Tag = 0x81
	TagReclaimable tlv.Tag = 0x82
	TagMaxTickets  tlv.Tag = 0x83
	TagStored      tlv.Tag = 0x84
	TagChecked     tlv.Tag = 0x85
	TagOverhead    tlv.Tag = 0x86
	TagCounter     tlv.Tag = 0x87
	TagSerial      tlv.Tag = 0x88
	TagVersion     tlv.Tag = 0x89
	TagEpoch       tlv.Tag = 0x8A
)

// Tags of the notification D0 and TERMINAL RESPONSE.
const (
	TagCommandDetails   tlv.Tag = 0x81
	TagDeviceIdentities tlv.Tag = 0x82
	TagResult           tlv.Tag = 0x83
	NotificationType            = 0xF0 // simtix's private proactive command
	DeviceUICC                  = 0x81
	DeviceTerminal              = 0x82
)

// Ticket states.
const (
	StateUnchecked byte = 0x00
	StateChecked   byte = 0x01
)
