// Package emulator runs the simtix SIM card: the applet over a non-volatile
// memory kept in a card image file (or in memory only), with its ATRs and
// the power of each interface, reached in-process through a Port per
// interface.
//
// It is the card's body, not its logic (package applet) and not its PC/SC
// face (package emulator/vpcd).
package emulator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/internal/atr"
	"github.com/simtix/simtix/internal/imagefile"
	"github.com/simtix/simtix/nvm"
)

// Errors of the emulated card.
var (
	// ErrNoPower means a command sent to an interface that is not powered
	// on.
	ErrNoPower = errors.New("emulator: the card is not powered on that interface")
	// ErrTorn means the power was cut in the middle of a command (an
	// injected tear): there is no answer, the reader sees the card removed,
	// and the next power-on finds the command fully applied or not at all.
	ErrTorn = errors.New("emulator: power cut during the command (card removed)")
	// ErrClosed means the card was closed.
	ErrClosed = errors.New("emulator: card closed")
)

// Interfaces, as the applet names them.
const (
	Contact     = applet.Contact
	Contactless = applet.Contactless
)

// Options configure a card when it is opened.
type Options struct {
	// T0 runs the contact interface in T=0 mode.
	T0 bool
	// Fault injects a write fault or a tear (nvm.ParseFault reads the
	// command line's form); its count restarts at every power-on.
	Fault nvm.Fault
	// NoSync saves the image without fsync: for tests and benchmarks only.
	NoSync bool
}

// Card is an emulated SIM card. It is safe for concurrent use: it runs one
// command at a time across both interfaces, as the card does.
type Card struct {
	lock    chan struct{} // held while a command or a power change runs
	file    *imagefile.File
	ram     *nvm.RAM
	mem     *nvm.Faulty
	card    *applet.Card // nil while no interface is powered, or after a tear
	powered [2]bool
	opts    Options
	saved   nvm.Stats
	label   string
	closed  bool
}

// Personalise makes the memory of a new card. A nil CardKey gets a fresh
// key pair.
func Personalise(p applet.Personalisation) (*nvm.RAM, error) {
	if p.CardKey == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("emulator: card key: %w", err)
		}
		p.CardKey = k
	}
	capacity, maxTickets := p.Capacity, p.MaxTickets
	if capacity == 0 {
		capacity = applet.DefaultCapacity
	}
	if maxTickets == 0 {
		maxTickets = applet.DefaultMaxTickets
	}
	ps, pages := applet.MemoryLayout(capacity, maxTickets)
	ram := nvm.NewRAM(ps, pages)
	if _, err := applet.Personalise(ram, p); err != nil {
		return nil, err
	}
	return ram, nil
}

// Create personalises a new card into a new image file; it refuses to
// overwrite anything at path.
func Create(path string, p applet.Personalisation) error {
	ram, err := Personalise(p)
	if err != nil {
		return err
	}
	return imagefile.Create(path, imagefile.Image{PageSize: ram.PageSize(), Memory: ram.Bytes(),
		Label: fmt.Sprintf("simtix card %v", p.Serial)})
}

// Open opens the card in an image file, locking it, and checks that it
// powers on. The card starts with every interface powered off.
func Open(path string, opts Options) (*Card, error) {
	f, err := imagefile.Open(path)
	if err != nil {
		return nil, err
	}
	f.SetSync(!opts.NoSync)
	img := f.Image()
	ram, err := nvm.RAMFromBytes(img.PageSize, img.Memory)
	if err == nil {
		_, err = applet.Load(ram)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("card image %s: %w", path, err)
	}
	c := newCard(ram, opts)
	c.file, c.label = f, img.Label
	return c, nil
}

// New returns a card that lives in memory only, such as Personalise makes.
func New(ram *nvm.RAM, opts Options) (*Card, error) {
	if _, err := applet.Load(ram); err != nil {
		return nil, err
	}
	return newCard(ram, opts), nil
}

func newCard(ram *nvm.RAM, opts Options) *Card {
	c := &Card{lock: make(chan struct{}, 1), ram: ram, mem: nvm.NewFaulty(ram, opts.Fault), opts: opts}
	c.saved = ram.Stats()
	return c
}

func (c *Card) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.closed {
		<-c.lock
		return ErrClosed
	}
	return nil
}

func (c *Card) release() { <-c.lock }

// ATR returns the interface's Answer-to-Reset.
func (c *Card) ATR(i applet.Interface) []byte {
	if i == Contactless {
		return atr.Contactless()
	}
	return atr.Contact(c.opts.T0)
}

// PowerOn powers an interface on (or resets it if it is on) and returns its
// ATR. The first interface powered on starts the card: it finds the last
// committed state in its memory.
func (c *Card) PowerOn(ctx context.Context, i applet.Interface) ([]byte, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	if c.card == nil {
		c.mem.PowerOn()
		card, err := applet.Load(c.mem)
		if err != nil {
			return nil, err
		}
		card.SetT0(c.opts.T0)
		c.card = card
	}
	c.card.Reset(i)
	c.powered[i] = true
	return c.ATR(i), nil
}

// PowerOff powers an interface off; its volatile state is lost. With both
// interfaces off the card is off.
func (c *Card) PowerOff(ctx context.Context, i applet.Interface) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	c.powered[i] = false
	if c.card != nil {
		c.card.Reset(i)
	}
	if !c.powered[Contact] && !c.powered[Contactless] {
		c.card = nil
	}
	return nil
}

// Powered reports whether an interface is powered on.
func (c *Card) Powered(i applet.Interface) bool {
	c.lock <- struct{}{}
	defer c.release()
	return c.powered[i]
}

// Transmit runs one command APDU on a powered interface and returns the
// response APDU. After a tear it returns ErrTorn: both interfaces are then
// off, as when a card is pulled from the field.
func (c *Card) Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	if !c.powered[i] || c.card == nil {
		return nil, ErrNoPower
	}
	resp, err := c.card.Process(i, cmd)
	if serr := c.save(); serr != nil {
		return nil, serr
	}
	if err != nil {
		if errors.Is(err, nvm.ErrPowerLost) {
			c.card = nil
			c.powered = [2]bool{}
			return nil, fmt.Errorf("%w: %v", ErrTorn, err)
		}
		return nil, err
	}
	return resp, nil
}

// save writes the memory to the image file if the command wrote to it.
func (c *Card) save() error {
	if c.file == nil || c.ram.Stats() == c.saved {
		return nil
	}
	if err := c.file.Save(imagefile.Image{PageSize: c.ram.PageSize(), Memory: c.ram.Bytes(), Label: c.label}); err != nil {
		return fmt.Errorf("emulator: saving the card image: %w", err)
	}
	c.saved = c.ram.Stats()
	return nil
}

// PublicKey returns the card's public key (the card certificate's 8C).
func (c *Card) PublicKey() *ecdsa.PublicKey {
	c.lock <- struct{}{}
	defer c.release()
	s, err := SnapshotOf(c.ram)
	if err != nil {
		return nil
	}
	return s.PublicKey
}

// Snapshot returns the card's non-volatile state.
func (c *Card) Snapshot() (applet.Snapshot, error) {
	c.lock <- struct{}{}
	defer c.release()
	if c.card != nil {
		return c.card.Snapshot(), nil
	}
	return SnapshotOf(c.ram)
}

// SnapshotOf decodes the state held in a card memory without changing it.
func SnapshotOf(ram *nvm.RAM) (applet.Snapshot, error) {
	copyRAM, err := nvm.RAMFromBytes(ram.PageSize(), ram.Bytes())
	if err != nil {
		return applet.Snapshot{}, err
	}
	card, err := applet.Load(copyRAM)
	if err != nil {
		return applet.Snapshot{}, err
	}
	return card.Snapshot(), nil
}

// ReadSnapshot reads a card image file without locking it (the card may be
// in use) and returns its state.
func ReadSnapshot(path string) (applet.Snapshot, error) {
	img, err := imagefile.Read(path)
	if err != nil {
		return applet.Snapshot{}, err
	}
	ram, err := nvm.RAMFromBytes(img.PageSize, img.Memory)
	if err != nil {
		return applet.Snapshot{}, fmt.Errorf("card image %s: %w", path, err)
	}
	s, err := SnapshotOf(ram)
	if err != nil {
		return applet.Snapshot{}, fmt.Errorf("card image %s: %w", path, err)
	}
	return s, nil
}

// Stats returns the memory writes counted since the card was opened.
func (c *Card) Stats() nvm.Stats {
	c.lock <- struct{}{}
	defer c.release()
	return c.ram.Stats()
}

// Close saves the card and releases its image file.
func (c *Card) Close() error {
	c.lock <- struct{}{}
	defer c.release()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.file == nil {
		return nil
	}
	err := c.save()
	return errors.Join(err, c.file.Close())
}

// Device is what a reader reaches: a card with its power and ATR per
// interface. Card is the simtix SIM; Echo is a bare baseline.
type Device interface {
	// ATR returns the interface's Answer-to-Reset.
	ATR(i applet.Interface) []byte
	// PowerOn powers an interface on (or resets it) and returns its ATR.
	PowerOn(ctx context.Context, i applet.Interface) ([]byte, error)
	// PowerOff powers an interface off.
	PowerOff(ctx context.Context, i applet.Interface) error
	// Transmit runs one command APDU and returns the response APDU.
	Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error)
}

// Port is one interface of a device as an in-process transport: an APDU
// in, the response out.
type Port struct {
	dev Device
	i   applet.Interface
}

// NewPort returns interface i of dev.
func NewPort(dev Device, i applet.Interface) *Port { return &Port{dev: dev, i: i} }

// Port returns the card's interface i.
func (c *Card) Port(i applet.Interface) *Port { return NewPort(c, i) }

// Transmit sends one command APDU and returns the response APDU.
//
// As a hostlib.Transport it reports a tear and an unpowered interface as a
// reader does, as hostlib.ErrCardRemoved (wrapping ErrTorn or ErrNoPower):
// the command may or may not have been applied.
func (p *Port) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := p.dev.Transmit(ctx, p.i, cmd)
	if errors.Is(err, ErrTorn) || errors.Is(err, ErrNoPower) {
		return nil, fmt.Errorf("%w: %w", hostlib.ErrCardRemoved, err)
	}
	return resp, err
}

// PowerOn powers the interface on (or resets it) and returns its ATR.
func (p *Port) PowerOn(ctx context.Context) ([]byte, error) { return p.dev.PowerOn(ctx, p.i) }

// PowerOff powers the interface off.
func (p *Port) PowerOff(ctx context.Context) error { return p.dev.PowerOff(ctx, p.i) }

// Interface returns which interface this is.
func (p *Port) Interface() applet.Interface { return p.i }
