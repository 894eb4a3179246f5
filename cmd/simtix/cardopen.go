package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/pcsc"
)

// cardFlags are the two ways a role command reaches a card: a PC/SC reader
// or a card image run in-process.
type cardFlags struct {
	reader string
	image  string
}

// check returns a usage error unless exactly one of the two is given.
func (f cardFlags) check() error {
	if (f.reader == "") == (f.image == "") {
		return usagef("give the card as --reader NAME or --image FILE (one of them)")
	}
	return nil
}

// openedCard is a card reached by a role command.
type openedCard struct {
	hostlib.Transport
	close func() error
}

// Close releases the card (and saves an image).
func (c *openedCard) Close() error { return c.close() }

// open reaches the card on interface i: the image powered on that
// interface, or the reader's card (waiting for one to be presented until
// ctx ends).
func (f cardFlags) open(ctx context.Context, i applet.Interface) (*openedCard, error) {
	if f.image != "" {
		card, err := openImage(f.image, emulator.Options{})
		if err != nil {
			return nil, err
		}
		if _, err := card.PowerOn(ctx, i); err != nil {
			return nil, errors.Join(err, card.Close())
		}
		return &openedCard{Transport: card.Port(i), close: card.Close}, nil
	}
	pc, err := pcsc.Open()
	if err != nil {
		return nil, err
	}
	if err := pc.WaitCard(ctx, f.reader); err != nil {
		return nil, errors.Join(fmt.Errorf("waiting for a card in %q: %w", f.reader, err), pc.Close())
	}
	card, err := pc.Connect(f.reader, pcsc.ConnectOptions{})
	if err != nil {
		return nil, errors.Join(err, pc.Close())
	}
	return &openedCard{Transport: card, close: func() error { return errors.Join(card.Close(), pc.Close()) }}, nil
}

// reopen is open for a card that has just left the reader: until pcscd's
// next presence poll the reader may still show it, and connecting to it
// fails; it tries again every 250 ms until the card answers or ctx ends.
func (f cardFlags) reopen(ctx context.Context, i applet.Interface) (*openedCard, error) {
	for {
		c, err := f.open(ctx, i)
		if err == nil || !errors.Is(err, hostlib.ErrCardRemoved) && !errors.Is(err, hostlib.ErrCardReset) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
