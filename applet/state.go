package applet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/simtix/simtix/cardproto"
	"hash/crc32"

	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/ticketfmt"
)

// ErrCorrupt means a card memory whose contents break the applet's own
// rules: a damaged or foreign image. The card refuses to run on it.
var ErrCorrupt = errors.New("applet: card memory is damaged")

// The image layout (all big-endian). The hot fields that nearly every
// command changes share the first page.
//
//	0   "STX" 01          magic and layout version
//	4   epoch (4)
//	8   counter (4)
//	12  notification: pending number, fetched, changed since fetch, last number
//	16  certificate length (2): 0 or 154
//	18  reserved (14)
//	32  serial (10), capacity (2), maximum tickets (1), reserved (1)
//	46  K_auth (32), K_store (32), card private key (32)
//	142 reserved (2)
//	144 certificate (154)
//	298 check table: maximum tickets × (gate ID 4, check time 7)
//	... ticket file: capacity bytes of records, then zeros
//
// A record is its 8-byte header (length 2, state 1, check slot 1, CRC-32C of
// the ticket 4) and the ticket: h = RecordOverhead = 8. Records are kept in
// the order they were stored, with no gaps; a length of 0 ends them.
const (
	offEpoch      = 4
	offCounter    = 8
	offNotify     = 12
	offCertLen    = 16
	offSerial     = 32
	offCapacity   = 42
	offMax        = 44
	offKAuth      = 46
	offKStore     = 78
	offCardKey    = 110
	offCert       = 144
	offChecks     = offCert + ticketfmt.CertificateSize
	checkEntry    = cardkeys.GateIDSize + checkTimeSize
	checkTimeSize = 7
	noSlot        = 0xFF
	layoutMagic   = "STX\x01"
)

// ImageSize is the size of the card's logical image for a ticket file of
// capacity bytes and maxTickets records.
func ImageSize(capacity, maxTickets int) int {
	return offChecks + maxTickets*checkEntry + capacity
}

// record is one stored ticket.
type record struct {
	raw    []byte // the E1 ticket
	ticket *ticketfmt.Ticket
	state  byte
	slot   byte // check table entry of a checked ticket, else noSlot
	gate   [cardkeys.GateIDSize]byte
	when   [checkTimeSize]byte
}

func (r *record) cost() int { return len(r.raw) + RecordOverhead }

// notification is the storage-changed notification's persistent state.
type notification struct {
	pending byte // number pending, 0 for none
	fetched bool // the pending one has been fetched
	changed bool // a change since it was fetched: raise the next on TERMINAL RESPONSE
	last    byte // the last number used, 0 before the first
}

func nextNumber(n byte) byte {
	if n == 255 {
		return 1
	}
	return n + 1
}

// raise records a storage change.
func (n *notification) raise() {
	switch {
	case n.pending == 0:
		n.last = nextNumber(n.last)
		n.pending, n.fetched, n.changed = n.last, false, false
	case n.fetched:
		n.changed = true
	}
	// Pending and not fetched yet: the pending one now covers this change.
}

// personal is what personalisation sets, once.
type personal struct {
	serial     ticketfmt.Serial
	capacity   int
	maxTickets int
	keys       cardkeys.Keys
	cardKey    *ecdsa.PrivateKey
	publicKey  []byte // uncompressed, 65 bytes
	scalar     []byte // the private key's 32 bytes
}

// state is the card's non-volatile state, decoded. Commands never modify a
// state in place: they build the next one and commit it.
type state struct {
	epoch, counter uint32
	notify         notification
	cert           []byte
	records        []*record
}

// clone returns a copy whose record list can be changed without touching s.
func (s *state) clone() *state {
	c := *s
	c.records = append([]*record(nil), s.records...)
	return &c
}

func (s *state) find(id ticketfmt.ID) (int, *record) {
	for i, r := range s.records {
		if r.ticket.ID == id {
			return i, r
		}
	}
	return -1, nil
}

// usage is what the status template reports.
type usage struct {
	free, reclaimable, stored, checked int
}

func (s *state) usage(p *personal) usage {
	u := usage{free: p.capacity, stored: len(s.records)}
	for _, r := range s.records {
		u.free -= r.cost()
		if r.state == cardproto.StateChecked {
			u.checked++
			u.reclaimable += r.cost()
		}
	}
	return u
}

// freeSlot returns the lowest check table entry no checked record uses.
func (s *state) freeSlot() byte {
	var used [256]bool
	for _, r := range s.records {
		if r.slot != noSlot {
			used[r.slot] = true
		}
	}
	for i := range used {
		if !used[i] {
			return byte(i)
		}
	}
	return noSlot
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encode writes p and s as the card's image.
func encode(p *personal, s *state) []byte {
	img := make([]byte, ImageSize(p.capacity, p.maxTickets))
	copy(img, layoutMagic)
	binary.BigEndian.PutUint32(img[offEpoch:], s.epoch)
	binary.BigEndian.PutUint32(img[offCounter:], s.counter)
	img[offNotify] = s.notify.pending
	img[offNotify+1] = boolByte(s.notify.fetched)
	img[offNotify+2] = boolByte(s.notify.changed)
	img[offNotify+3] = s.notify.last
	binary.BigEndian.PutUint16(img[offCertLen:], uint16(len(s.cert)))
	copy(img[offSerial:], p.serial[:])
	binary.BigEndian.PutUint16(img[offCapacity:], uint16(p.capacity))
	img[offMax] = byte(p.maxTickets)
	copy(img[offKAuth:], p.keys.Auth[:])
	copy(img[offKStore:], p.keys.Store[:])
	copy(img[offCardKey:offCardKey+32], p.scalar)
	copy(img[offCert:], s.cert)
	file := offChecks + p.maxTickets*checkEntry
	off := file
	for _, r := range s.records {
		if r.slot != noSlot {
			e := img[offChecks+int(r.slot)*checkEntry:]
			copy(e, r.gate[:])
			copy(e[cardkeys.GateIDSize:], r.when[:])
		}
		binary.BigEndian.PutUint16(img[off:], uint16(len(r.raw)))
		img[off+2] = r.state
		img[off+3] = r.slot
		binary.BigEndian.PutUint32(img[off+4:], crc32.Checksum(r.raw, castagnoli))
		copy(img[off+RecordOverhead:], r.raw)
		off += r.cost()
	}
	return img
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// decode reads an image, checking everything it can: any inconsistency is
// ErrCorrupt, never a half-loaded card.
func decode(img []byte) (*personal, *state, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(img) < offChecks || string(img[:4]) != layoutMagic {
		return nil, nil, bad("not a simtix applet image (layout version %x)", img[:min(4, len(img))])
	}
	p := &personal{
		capacity:   int(binary.BigEndian.Uint16(img[offCapacity:])),
		maxTickets: int(img[offMax]),
	}
	copy(p.serial[:], img[offSerial:])
	if p.capacity < MinCapacity || p.capacity > MaxCapacity || p.maxTickets < 1 || len(img) != ImageSize(p.capacity, p.maxTickets) {
		return nil, nil, bad("capacity %d, %d tickets, image of %d bytes", p.capacity, p.maxTickets, len(img))
	}
	copy(p.keys.Auth[:], img[offKAuth:])
	copy(p.keys.Store[:], img[offKStore:])
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), img[offCardKey:offCardKey+32])
	if err != nil {
		return nil, nil, bad("card key: %v", err)
	}
	p.cardKey = key
	p.scalar = append([]byte(nil), img[offCardKey:offCardKey+32]...)
	if p.publicKey, err = ticketfmt.EncodePublicKey(&key.PublicKey); err != nil {
		return nil, nil, bad("card key: %v", err)
	}
	s := &state{
		epoch:   binary.BigEndian.Uint32(img[offEpoch:]),
		counter: binary.BigEndian.Uint32(img[offCounter:]),
		notify: notification{
			pending: img[offNotify], fetched: img[offNotify+1] == 1,
			changed: img[offNotify+2] == 1, last: img[offNotify+3],
		},
	}
	if img[offNotify+1] > 1 || img[offNotify+2] > 1 || (s.notify.pending == 0 && (s.notify.fetched || s.notify.changed)) {
		return nil, nil, bad("notification state %x", img[offNotify:offNotify+4])
	}
	switch n := int(binary.BigEndian.Uint16(img[offCertLen:])); n {
	case 0:
	case ticketfmt.CertificateSize:
		s.cert = append([]byte(nil), img[offCert:offCert+n]...)
		cert, err := ticketfmt.UnmarshalCertificate(s.cert)
		if err != nil || cert.Serial != p.serial || !cert.PublicKey.Equal(&p.cardKey.PublicKey) {
			return nil, nil, bad("certificate not for this card (%v)", err)
		}
	default:
		return nil, nil, bad("certificate length %d", n)
	}
	file := offChecks + p.maxTickets*checkEntry
	off, end := file, file+p.capacity
	slots := map[byte]bool{}
	for off+RecordOverhead <= end {
		n := int(binary.BigEndian.Uint16(img[off:]))
		if n == 0 {
			break
		}
		if off+RecordOverhead+n > end || len(s.records) == p.maxTickets {
			return nil, nil, bad("record at %d: %d bytes overflow the ticket file", off-file, n)
		}
		r := &record{raw: append([]byte(nil), img[off+RecordOverhead:off+RecordOverhead+n]...), state: img[off+2], slot: img[off+3]}
		if crc32.Checksum(r.raw, castagnoli) != binary.BigEndian.Uint32(img[off+4:]) {
			return nil, nil, bad("record at %d: checksum mismatch", off-file)
		}
		if r.ticket, err = ticketfmt.Unmarshal(r.raw); err != nil {
			return nil, nil, bad("record at %d: %v", off-file, err)
		}
		if r.ticket.Carrier != p.serial {
			return nil, nil, bad("record at %d: ticket %v bound to card %v", off-file, r.ticket.ID, r.ticket.Carrier)
		}
		switch {
		case r.state == cardproto.StateUnchecked && r.slot == noSlot:
		case r.state == cardproto.StateChecked && int(r.slot) < p.maxTickets && !slots[r.slot]:
			slots[r.slot] = true
			e := img[offChecks+int(r.slot)*checkEntry:]
			copy(r.gate[:], e)
			copy(r.when[:], e[cardkeys.GateIDSize:])
			if _, err := ticketfmt.DecodeDateTime(r.when[:]); err != nil {
				return nil, nil, bad("record at %d: check time %X: %v", off-file, r.when, err)
			}
		default:
			return nil, nil, bad("record at %d: state %02x, check slot %d", off-file, r.state, r.slot)
		}
		if i, _ := s.find(r.ticket.ID); i >= 0 {
			return nil, nil, bad("ticket %v stored twice", r.ticket.ID)
		}
		s.records = append(s.records, r)
		off += r.cost()
	}
	return p, s, nil
}
