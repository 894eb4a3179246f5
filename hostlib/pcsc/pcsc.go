// Package pcsc is hostlib's transport over a PC/SC reader (pcsc-lite,
// through github.com/ebfe/scard): list readers, wait for a card, connect
// shared or exclusive, transactions, reconnect after a reset, and errors
// that say when the reader or the card went away.
//
// It is the only part of simtix that needs cgo (and libpcsclite-dev).
package pcsc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ebfe/scard"

	"github.com/simtix/simtix/hostlib"
)

// ErrNoReader means a reader name that PC/SC does not know.
var ErrNoReader = errors.New("pcsc: no such reader")

// ErrCardInUse means another connection keeps this one off the card: it
// holds the card exclusively, or this one asked for the card exclusively
// while another holds it at all (PC/SC's sharing violation). pcsc-lite
// answers at once, without waiting for the other to let go; try again
// after it has disconnected.
var ErrCardInUse = errors.New("pcsc: card in use by another connection")

// wrap turns a PC/SC error into one that matches hostlib's transport
// errors with errors.Is (and still matches the scard.Error itself).
func wrap(op string, err error) error {
	var se scard.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("pcsc: %s: %w", op, err)
	}
	var kind error
	switch se {
	case scard.ErrRemovedCard, scard.ErrNoSmartcard, scard.ErrNotTransacted:
		// pcsc-lite answers NOT_TRANSACTED when the reader's driver could
		// not reach the card (vpcd: the card's connection closed; a real
		// reader: a card pulled mid-command, before pcscd polls it gone):
		// the command may or may not have been applied.
		kind = hostlib.ErrCardRemoved
	case scard.ErrResetCard, scard.ErrUnpoweredCard:
		kind = hostlib.ErrCardReset
	case scard.ErrReaderUnavailable, scard.ErrNoReadersAvailable, scard.ErrNoService, scard.ErrServiceStopped:
		kind = hostlib.ErrReaderGone
	case scard.ErrUnknownReader:
		kind = ErrNoReader
	case scard.ErrSharingViolation:
		kind = ErrCardInUse
	default:
		return fmt.Errorf("pcsc: %s: %w", op, se)
	}
	return fmt.Errorf("pcsc: %s: %w: %w", op, kind, se)
}

// Context is a connection to the PC/SC service (pcscd).
type Context struct {
	c *scard.Context
}

// Open connects to the PC/SC service.
func Open() (*Context, error) {
	c, err := scard.EstablishContext()
	if err != nil {
		return nil, wrap("connecting to the PC/SC service (is pcscd running?)", err)
	}
	return &Context{c: c}, nil
}

// Close releases the context.
func (c *Context) Close() error {
	if err := c.c.Release(); err != nil {
		return wrap("release", err)
	}
	return nil
}

// Readers lists the readers PC/SC knows (none is not an error).
func (c *Context) Readers() ([]string, error) {
	rs, err := c.c.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("listing readers", err)
	}
	return rs, nil
}

// WaitCard waits until a card is present in reader (at once if it is), or
// ctx is done. It sleeps in PC/SC's own wait, without polling.
func (c *Context) WaitCard(ctx context.Context, reader string) error {
	return c.wait(ctx, reader, true)
}

// WaitRemoved waits until reader holds no card, or ctx is done.
func (c *Context) WaitRemoved(ctx context.Context, reader string) error {
	return c.wait(ctx, reader, false)
}

func (c *Context) wait(ctx context.Context, reader string, present bool) error {
	// A context of its own: cancelling it must not cancel other calls.
	wc, err := scard.EstablishContext()
	if err != nil {
		return wrap("wait", err)
	}
	defer func() { _ = wc.Release() }()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = wc.Cancel()
		case <-done:
		}
	}()
	rs := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
	for {
		if err := wc.GetStatusChange(rs, -1); err != nil {
			if errors.Is(err, scard.ErrCancelled) && ctx.Err() != nil {
				return ctx.Err()
			}
			return wrap("waiting for "+reader, err)
		}
		state := rs[0].EventState
		if state&scard.StateUnknown != 0 {
			return fmt.Errorf("pcsc: %w: %q", ErrNoReader, reader)
		}
		if (state&scard.StatePresent != 0) == present && state&scard.StateMute == 0 {
			return nil
		}
		rs[0].CurrentState = state &^ scard.StateChanged
	}
}

// Protocol chooses the transmission protocol to connect with.
type Protocol int

// The protocols.
const (
	// Any lets PC/SC choose (the card's first offered protocol).
	Any Protocol = iota
	// T0 is ISO/IEC 7816-3 T=0.
	T0
	// T1 is ISO/IEC 7816-3 T=1 (and what contactless readers present).
	T1
)

func (p Protocol) scard() scard.Protocol {
	switch p {
	case T0:
		return scard.ProtocolT0
	case T1:
		return scard.ProtocolT1
	}
	return scard.ProtocolAny
}

// ConnectOptions say how to connect to a card.
type ConnectOptions struct {
	// Exclusive keeps other programs off the card while connected.
	Exclusive bool
	// Protocol is the protocol to connect with.
	Protocol Protocol
}

// Card is a connection to the card in one reader. It implements
// hostlib.Transport. It is safe for concurrent use; commands go one at a
// time.
type Card struct {
	mu     sync.Mutex
	card   *scard.Card
	reader string
	opts   ConnectOptions
}

// Connect connects to the card in reader.
func (c *Context) Connect(reader string, opts ConnectOptions) (*Card, error) {
	mode := scard.ShareShared
	if opts.Exclusive {
		mode = scard.ShareExclusive
	}
	card, err := c.c.Connect(reader, mode, opts.Protocol.scard())
	if err != nil {
		return nil, wrap("connecting to "+reader, err)
	}
	return &Card{card: card, reader: reader, opts: opts}, nil
}

// Reader is the card's reader.
func (k *Card) Reader() string { return k.reader }

// Transmit implements hostlib.Transport. A command that has reached the
// card is not interrupted when ctx ends: PC/SC cannot take it back. While
// another connection holds a transaction on the card (Transaction), the
// command waits in pcsc-lite until that ends, and ctx does not cut the
// wait short either: given up, the command would still reach the card
// later. After a reset by another program it reconnects and
// returns an error matching hostlib.ErrCardReset: the card's volatile state
// (selection) is gone, and the command was not sent.
func (k *Card) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	resp, err := k.card.Transmit(cmd)
	if err == nil && len(resp) < 2 {
		// vpcd answers a card that vanished mid-command (a tear) with an
		// empty response before pcscd notices the removal.
		return nil, fmt.Errorf("pcsc: transmit: %w (empty response)", hostlib.ErrCardRemoved)
	}
	if err == nil {
		return resp, nil
	}
	if errors.Is(err, scard.ErrResetCard) {
		if rerr := k.card.Reconnect(k.mode(), k.opts.Protocol.scard(), scard.LeaveCard); rerr != nil {
			return nil, errors.Join(wrap("transmit", err), wrap("reconnect", rerr))
		}
	}
	return nil, wrap("transmit", err)
}

func (k *Card) mode() scard.ShareMode {
	if k.opts.Exclusive {
		return scard.ShareExclusive
	}
	return scard.ShareShared
}

// ATR returns the card's Answer-to-Reset.
func (k *Card) ATR() ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := k.card.Status()
	if err != nil {
		return nil, wrap("status", err)
	}
	return st.Atr, nil
}

// ActiveProtocol names the protocol in use: "T=0" or "T=1".
func (k *Card) ActiveProtocol() string {
	if k.card.ActiveProtocol() == scard.ProtocolT0 {
		return "T=0"
	}
	return "T=1"
}

// Reconnect connects again, resetting the card (reset true: its volatile
// state is lost) or leaving it as it is.
func (k *Card) Reconnect(ctx context.Context, reset bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	disp := scard.LeaveCard
	if reset {
		disp = scard.ResetCard
	}
	if err := k.card.Reconnect(k.mode(), k.opts.Protocol.scard(), disp); err != nil {
		return wrap("reconnect", err)
	}
	return nil
}

// Transaction runs fn with the card to itself: no other connection's
// command comes between fn's commands (theirs wait until fn has returned),
// and no other connection's transaction begins. If another connection holds
// a transaction, Transaction first waits for its end, or until ctx is done:
// then fn is not run, the error matches ctx.Err(), and this Card's other
// calls wait until the other transaction has ended.
func (k *Card) Transaction(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	// pcsc-lite's begin waits in the library, which nothing interrupts:
	// wait for it here, so that ctx can end the wait.
	begun := make(chan error, 1)
	go func() { begun <- k.card.BeginTransaction() }()
	var err error
	select {
	case err = <-begun:
		k.mu.Unlock()
	case <-ctx.Done():
		// Given up: once the other transaction ends, this one begins;
		// end it at once, and only then let this Card's other calls in.
		go func() {
			if err := <-begun; err == nil {
				_ = k.card.EndTransaction(scard.LeaveCard)
			}
			k.mu.Unlock()
		}()
		return fmt.Errorf("pcsc: begin transaction: %w", ctx.Err())
	}
	if err != nil {
		return wrap("begin transaction", err)
	}
	ferr := fn()
	k.mu.Lock()
	err = k.card.EndTransaction(scard.LeaveCard)
	k.mu.Unlock()
	if err != nil {
		return errors.Join(ferr, wrap("end transaction", err))
	}
	return ferr
}

// Close disconnects, leaving the card as it is.
func (k *Card) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.card.Disconnect(scard.LeaveCard); err != nil {
		return wrap("disconnect", err)
	}
	return nil
}

// compile-time check.
var _ hostlib.Transport = (*Card)(nil)
