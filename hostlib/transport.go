// Package hostlib is the host side of simtix for terminal vendors and
// tests: one small Transport interface over any card (the in-process
// emulator, a PC/SC reader through hostlib/pcsc), a Client that handles what
// every caller otherwise writes by hand (61xx and GET RESPONSE, 6Cxx,
// chaining and extended length, 91xx notifications, typed errors), stackable
// wrappers (trace, record and replay, fault injection), and Applet, a typed
// client of the ticket applet.
//
// This package is free of cgo; only hostlib/pcsc needs it.
package hostlib

import (
	"context"
	"errors"
)

// Transport carries one command APDU to a card and returns the card's
// response APDU (data and status word), as the card gave it.
// emulator.Port and pcsc.Card implement it; wrappers stack on it.
type Transport interface {
	Transmit(ctx context.Context, cmd []byte) ([]byte, error)
}

// TransportFunc adapts a function to Transport.
type TransportFunc func(ctx context.Context, cmd []byte) ([]byte, error)

// Transmit implements Transport.
func (f TransportFunc) Transmit(ctx context.Context, cmd []byte) ([]byte, error) { return f(ctx, cmd) }

// Errors a Transport returns when no answer comes. Transports wrap them so
// that callers can tell the cases apart with errors.Is.
var (
	// ErrCardRemoved means the card left the reader (or lost power) during
	// or before the command: the command may or may not have been applied.
	ErrCardRemoved = errors.New("hostlib: card removed")
	// ErrResponseLost means the command reached the card but its answer was
	// lost: the command may have been applied.
	ErrResponseLost = errors.New("hostlib: response lost")
	// ErrReaderGone means the reader itself went away.
	ErrReaderGone = errors.New("hostlib: reader gone")
	// ErrCardReset means another program reset the card: its volatile state
	// (selection, channels) is gone, its stored state is not.
	ErrCardReset = errors.New("hostlib: card reset")
)
