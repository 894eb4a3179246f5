package applet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
)

// Version is the applet version reported in the status template.
const Version = 0x0100

// Interface is one of the card's two interfaces.
type Interface int

// The interfaces.
const (
	// Contact is the handset's interface (ISO/IEC 7816-3).
	Contact Interface = iota
	// Contactless is the gate's interface (ISO/IEC 14443-4).
	Contactless
)

// String names the interface as the command line does.
func (i Interface) String() string {
	if i == Contactless {
		return "contactless"
	}
	return "contact"
}

// Personalisation is what a card is made with.
type Personalisation struct {
	// Serial is the card serial number; tickets are bound to it.
	Serial ticketfmt.Serial
	// Capacity is the ticket file's size in bytes (0: DefaultCapacity).
	Capacity int
	// MaxTickets is the maximum ticket count (0: DefaultMaxTickets).
	MaxTickets int
	// Master is the issuer's 32-byte master secret; the card keeps only the
	// keys derived from it.
	Master []byte
	// CardKey is the card's ECDSA P-256 key pair, made by the caller (the
	// applet draws no randomness).
	CardKey *ecdsa.PrivateKey
}

func (p *Personalisation) normalise() error {
	if p.Capacity == 0 {
		p.Capacity = DefaultCapacity
	}
	if p.MaxTickets == 0 {
		p.MaxTickets = DefaultMaxTickets
	}
	switch {
	case p.Capacity < MinCapacity || p.Capacity > MaxCapacity:
		return fmt.Errorf("applet: capacity %d outside %d-%d bytes", p.Capacity, MinCapacity, MaxCapacity)
	case p.MaxTickets < 1 || p.MaxTickets > 255:
		return fmt.Errorf("applet: maximum ticket count %d outside 1-255", p.MaxTickets)
	case p.CardKey == nil || p.CardKey.Curve != elliptic.P256():
		return errors.New("applet: the card key must be an ECDSA P-256 key")
	}
	return nil
}

// MemoryLayout returns the page size and page count of the non-volatile
// memory a card of this capacity and ticket count needs.
func MemoryLayout(capacity, maxTickets int) (pageSize, pages int) {
	return nvm.Layout(ImageSize(capacity, maxTickets))
}

// Card is the SIM card: the card runtime and the ticket applet, as a pure
// state machine. It is not safe for concurrent use: the card handles one
// command at a time across both interfaces, and so must its caller.
type Card struct {
	mem   *nvm.Store
	p     *personal
	s     *state
	iface [2]volatile
	t0    bool
}

// Personalise formats mem as a new card and returns it, powered on. mem
// must have the layout MemoryLayout gives.
func Personalise(mem nvm.Memory, p Personalisation) (*Card, error) {
	if err := p.normalise(); err != nil {
		return nil, err
	}
	keys, err := cardkeys.Derive(p.Master, p.Serial)
	if err != nil {
		return nil, fmt.Errorf("applet: %w", err)
	}
	pub, err := ticketfmt.EncodePublicKey(&p.CardKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("applet: card key: %w", err)
	}
	scalar, err := p.CardKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("applet: card key: %w", err)
	}
	pers := &personal{serial: p.Serial, capacity: p.Capacity, maxTickets: p.MaxTickets,
		keys: keys, cardKey: p.CardKey, publicKey: pub, scalar: scalar}
	st := &state{}
	store, err := nvm.Format(mem, encode(pers, st))
	if err != nil {
		return nil, fmt.Errorf("applet: personalise: %w", err)
	}
	return &Card{mem: store, p: pers, s: st}, nil
}

// Load powers the card on over mem: it finds the last committed state (a
// command cut off by a power loss is then fully applied or not at all) and
// starts with every interface reset.
func Load(mem nvm.Memory) (*Card, error) {
	store, err := nvm.Open(mem)
	if err != nil {
		if errors.Is(err, nvm.ErrNoImage) {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("applet: %w", err)
	}
	p, s, err := decode(store.Image())
	if err != nil {
		return nil, err
	}
	return &Card{mem: store, p: p, s: s}, nil
}

// SetT0 switches the T=0 mode of the contact interface (card-applet.md):
// extended APDUs are refused and a command with data that returns data
// answers 61xx first.
func (c *Card) SetT0(on bool) { c.t0 = on }

// T0 reports whether the card runs in T=0 mode.
func (c *Card) T0() bool { return c.t0 }

// Reset clears the volatile state of one interface, as a power-off, power-on
// or reset of that interface does: logical channels, selections, pending
// chains and responses, and (contact) whether TERMINAL PROFILE was sent. The
// non-volatile state is kept.
func (c *Card) Reset(i Interface) {
	c.iface[i] = volatile{}
}

// Serial returns the card's serial number.
func (c *Card) Serial() ticketfmt.Serial { return c.p.serial }

// PublicKey returns the card's public key.
func (c *Card) PublicKey() *ecdsa.PublicKey { return &c.p.cardKey.PublicKey }

// Process runs one command APDU received on interface i and returns the
// response APDU. It returns an error only when the card lost power during
// the command (a torn write, nvm.ErrPowerLost): then there is no response,
// and the card must be loaded again once powered on.
func (c *Card) Process(i Interface, cmd []byte) ([]byte, error) {
	data, sw, err := c.process(i, cmd)
	if err != nil {
		return nil, err
	}
	resp := make([]byte, len(data), len(data)+2) // data may alias a pending response
	copy(resp, data)
	return append(resp, byte(sw>>8), byte(sw)), nil
}

// commit makes next the card's state: the whole command's effect in one
// atomic write. A write fault leaves the old state and answers 6400.
func (c *Card) commit(next *state) error {
	if err := c.mem.Commit(encode(c.p, next)); err != nil {
		if errors.Is(err, nvm.ErrWriteFailed) {
			return swError(apdu.SWWriteFailed)
		}
		return err
	}
	c.s = next
	return nil
}

// swError is a status word used as an error inside the applet.
type swError apdu.StatusWord

func (e swError) Error() string { return apdu.StatusWord(e).String() }
