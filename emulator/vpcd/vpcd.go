// Package vpcd makes an emulated card a PC/SC card: it is the card's side of
// the TCP protocol of vsmartcard's virtual reader driver (vpcd) in pcscd.
package vpcd

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
)

// Default reader addresses: the two slots of Debian's vpcd configuration
// (/etc/reader.conf.d/vpcd), one card with both interfaces.
const (
	// DefaultContactAddr is vpcd's first slot, "Virtual PCD 00 00".
	DefaultContactAddr = "127.0.0.1:35963"
	// DefaultContactlessAddr is vpcd's second slot, "Virtual PCD 00 01".
	DefaultContactlessAddr = "127.0.0.1:35964"
)

// Default timings.
const (
	// DefaultRedialInterval is how often Serve dials a reader that does
	// not answer (pcscd stopped or restarting).
	DefaultRedialInterval = 200 * time.Millisecond
	// DefaultTearPause is how long Serve stays away from the reader after
	// a tear before it dials again. pcscd asks vpcd whether the card is
	// there every 400 ms; a card that comes back before a poll has found
	// the slot empty is taken for the same card, still powered (vpcd
	// accepts the new connection within the poll that notices the old one
	// closed). One second is more than two polls.
	DefaultTearPause = time.Second
	// quietWarning is how long a new connection may stay silent before
	// Serve warns that another card probably holds the slot: vpcd polls
	// every 400 ms, and it accepts one card per slot; a second one waits,
	// connected, in the listen backlog.
	quietWarning = 2 * time.Second
)

// vpcd's control messages: one byte from the reader.
const (
	ctrlOff   = 0x00
	ctrlOn    = 0x01
	ctrlReset = 0x02
	ctrlATR   = 0x04
)

// poweredReporter is a device that tells whether an interface has power
// (*emulator.Card does).
type poweredReporter interface {
	Powered(i applet.Interface) bool
}

// swNoPreciseDiagnosis is the answer to a command that failed inside the
// emulator (for example the image could not be saved).
var swNoPreciseDiagnosis = []byte{0x6F, 0x00}

// Option configures Serve and ServeCard.
type Option func(*config)

type config struct {
	log       *slog.Logger
	redial    time.Duration
	tearPause time.Duration
}

// WithLogger logs connections at Info, errors of the device at Error and
// power events and APDUs at Debug. Without it Serve logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithRedialInterval sets how often Serve dials a reader that does not
// answer (default DefaultRedialInterval).
func WithRedialInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.redial = d
		}
	}
}

// WithTearPause sets how long Serve stays away from the reader after a
// tear (default DefaultTearPause). Shorter than two of pcscd's presence
// polls (800 ms), the reader may not notice that the card went away.
func WithTearPause(d time.Duration) Option {
	return func(c *config) {
		if d >= 0 {
			c.tearPause = d
		}
	}
}

func newConfig(opts []Option) config {
	c := config{log: slog.New(slog.DiscardHandler), redial: DefaultRedialInterval, tearPause: DefaultTearPause}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Serve connects interface i of dev to the vpcd reader slot at addr
// (host:port; vpcd listens and the card dials) and serves it until ctx is
// done, then returns nil. It returns an error only when it cannot serve at
// all: a malformed addr, or a device that was closed (emulator.ErrClosed).
//
// vpcd's messages: power off, power on and reset reach dev.PowerOff and
// dev.PowerOn; the ATR is always answered with dev.ATR(i), powered or not
// (an empty answer would make vpcd drop the card); every longer message is
// a command APDU for dev.Transmit.
//
// When the reader is not there, or goes away (pcscd stopped or restarted),
// Serve powers the interface off and dials again every redial interval
// (WithRedialInterval): the card comes back by itself.
//
// A tear (dev.Transmit returns emulator.ErrTorn) removes the card: Serve
// closes the connection without an answer, waits the tear pause
// (WithTearPause) so that pcscd's next presence poll finds the slot empty,
// and dials again; pcscd then powers the card on afresh. vpcd cannot pass
// "no answer" on: the client gets an empty response (no status word) to
// the torn command, then errors (SCARD_W_REMOVED_CARD once pcscd has
// polled) until it connects again. When the card lost its power under this interface (a
// tear on the card's other interface: the device says the interface has
// no power although pcscd powered it on through this connection), that is
// a tear too: found at the next presence poll if dev has a
// Powered(applet.Interface) bool method (as *emulator.Card has), else at
// the next command. A command that arrives before any power-on on the
// connection (pcscd always powers a card on before its clients' commands;
// this happens only if its idea of the power is stale) powers the interface
// on first, as a real reader's contacts would.
//
// Any other error of dev (such as an image that could not be saved) is
// logged and answered 6F00, and serving goes on.
func Serve(ctx context.Context, addr string, dev emulator.Device, i applet.Interface, opts ...Option) error {
	if dev == nil {
		return errors.New("vpcd: no device to serve")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("vpcd: reader address %q: %w", addr, err)
	}
	s := &server{config: newConfig(opts), addr: addr, dev: dev, i: i}
	s.log = s.log.With("reader", addr, "interface", i.String())
	return s.run(ctx)
}

// ServeCard serves both interfaces of dev, contact at contactAddr and
// contactless at contactlessAddr (an empty address leaves that interface
// unserved), until ctx is done. It returns when both have returned; if one
// fails, the other is stopped, and the errors are joined.
func ServeCard(ctx context.Context, dev emulator.Device, contactAddr, contactlessAddr string, opts ...Option) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range []struct {
		addr string
		i    applet.Interface
	}{{contactAddr, applet.Contact}, {contactlessAddr, applet.Contactless}} {
		if p.addr == "" {
			continue
		}
		wg.Go(func() {
			if err := Serve(ctx, p.addr, dev, p.i, opts...); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%v interface: %w", p.i, err))
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

type server struct {
	config
	addr string
	dev  emulator.Device
	i    applet.Interface
}

// end says why a connection ended.
type end int

const (
	goOn     end = iota // not ended: serve the next message
	endDone             // ctx is done
	endLost             // the reader closed the connection or it failed
	endTorn             // the card was torn away
	endFatal            // the device is closed: stop serving
)

func (s *server) run(ctx context.Context) error {
	var d net.Dialer
	waiting := false
	for {
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !waiting {
				s.log.Info("vpcd: waiting for the reader (is pcscd running? scripts/pcscd.sh start)", "err", err)
				waiting = true
			}
			if !sleep(ctx, s.redial) {
				return nil
			}
			continue
		}
		waiting = false
		conn, ok := c.(*net.TCPConn)
		if !ok {
			_ = c.Close()
			return fmt.Errorf("vpcd: %s: not a TCP connection", s.addr)
		}
		s.log.Info("vpcd: connected to the reader (the card is inserted at its next presence poll)")
		why, err := s.session(ctx, conn)
		_ = conn.Close()
		switch why {
		case endDone:
			return nil
		case endFatal:
			return err
		case endTorn:
			s.log.Info("vpcd: card torn away; back after the tear pause", "pause", s.tearPause)
			if !sleep(ctx, s.tearPause) {
				return nil
			}
		case endLost:
			s.log.Info("vpcd: the reader went away (pcscd stopped?); dialling again", "err", err)
			// The reader's power went with it.
			if perr := s.dev.PowerOff(ctx, s.i); perr != nil && ctx.Err() == nil {
				s.log.Debug("vpcd: power off", "err", perr)
			}
		}
	}
}

// session serves one connection until it ends.
func (s *server) session(ctx context.Context, conn *net.TCPConn) (end, error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.SetNoDelay(true); err != nil {
		return s.lost(ctx, fmt.Errorf("TCP_NODELAY: %w", err))
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return s.lost(ctx, err)
	}
	st := &session{conn: conn, raw: raw}
	quiet := true // no message yet on this connection
	for {
		if quiet {
			_ = conn.SetReadDeadline(time.Now().Add(quietWarning))
		}
		msg, err := st.read()
		if quiet {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && st.partial == 0 {
				s.log.Warn("vpcd: connected, but the reader has said nothing: another card probably holds this slot (vpcd serves one card per slot); waiting for it to leave", "after", quietWarning)
				quiet = false
				_ = conn.SetReadDeadline(time.Time{})
				continue
			}
			quiet = false
			_ = conn.SetReadDeadline(time.Time{})
		}
		if err != nil {
			return s.lost(ctx, err)
		}
		resp, why, err := s.handle(ctx, st, msg)
		if why != goOn {
			return why, err
		}
		if resp == nil {
			continue
		}
		if err := st.write(resp); err != nil {
			return s.lost(ctx, err)
		}
	}
}

// lost classifies the end of a connection on err.
func (s *server) lost(ctx context.Context, err error) (end, error) {
	if ctx.Err() != nil {
		return endDone, nil
	}
	return endLost, err
}

// session is one connection to vpcd.
type session struct {
	conn    *net.TCPConn
	raw     syscall.RawConn
	hdr     [2]byte
	buf     []byte
	out     []byte
	partial int  // header bytes read when a read failed
	powered bool // pcscd powered the interface on through this connection
}

// read reads one message. TCP_QUICKACK is set after each read: Debian's
// vpcd sends a message's length and its payload in two send() calls
// without TCP_NODELAY, so Nagle's algorithm holds the payload until the
// length is acknowledged; a delayed ACK would cost about 40 ms a message.
func (st *session) read() ([]byte, error) {
	n, err := io.ReadFull(st.conn, st.hdr[st.partial:])
	st.partial += n
	if err != nil {
		return nil, err
	}
	st.partial = 0
	quickACK(st.raw)
	size := int(binary.BigEndian.Uint16(st.hdr[:]))
	if cap(st.buf) < size {
		st.buf = make([]byte, size)
	}
	msg := st.buf[:size]
	if _, err := io.ReadFull(st.conn, msg); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	quickACK(st.raw)
	return msg, nil
}

// write sends one message: length and payload in one write.
func (st *session) write(payload []byte) error {
	st.out = binary.BigEndian.AppendUint16(st.out[:0], uint16(len(payload)))
	st.out = append(st.out, payload...)
	_, err := st.conn.Write(st.out)
	return err
}

// handle answers one message. It returns the answer (nil for none) and
// goOn, or why the connection must end.
func (s *server) handle(ctx context.Context, st *session, msg []byte) ([]byte, end, error) {
	answer := func(resp []byte) ([]byte, end, error) { return resp, goOn, nil }
	if len(msg) == 1 {
		switch msg[0] {
		case ctrlATR:
			// pcscd's presence poll. A card that lost its power under this
			// interface (torn on the other one) leaves the reader now,
			// without an answer, rather than at the next command.
			if pr, ok := s.dev.(poweredReporter); ok && st.powered && !pr.Powered(s.i) {
				s.log.Info("vpcd: the card lost its power (torn on its other interface)")
				return nil, endTorn, nil
			}
			atr := s.dev.ATR(s.i)
			if len(atr) == 0 {
				s.log.Error("vpcd: the device has no ATR; vpcd will take the card for removed")
			}
			return answer(atr)
		case ctrlOff:
			s.log.Debug("vpcd: power off")
			st.powered = false
			if err := s.dev.PowerOff(ctx, s.i); err != nil {
				return s.devError(ctx, "power off", err)
			}
		case ctrlOn, ctrlReset:
			what := "power on"
			if msg[0] == ctrlReset {
				what = "reset"
			}
			s.log.Debug("vpcd: " + what)
			if _, err := s.dev.PowerOn(ctx, s.i); err != nil {
				st.powered = false
				return s.devError(ctx, what, err)
			}
			st.powered = true
		default:
			s.log.Warn("vpcd: unknown control message; ignored", "code", fmt.Sprintf("%02X", msg[0]))
		}
		return answer(nil)
	}
	if len(msg) == 0 {
		s.log.Warn("vpcd: empty message from the reader; ignored")
		return answer(nil)
	}

	resp, err := s.dev.Transmit(ctx, s.i, msg)
	if errors.Is(err, emulator.ErrNoPower) {
		if st.powered {
			// Powered through this connection and no power-off since:
			// the card lost its power under us (a tear on its other
			// interface took the whole card away).
			s.log.Info("vpcd: the card lost its power (torn on its other interface)")
			return nil, endTorn, nil
		}
		s.log.Debug("vpcd: command on an unpowered interface: powering it on first")
		if _, err = s.dev.PowerOn(ctx, s.i); err == nil {
			st.powered = true
			resp, err = s.dev.Transmit(ctx, s.i, msg)
		}
	}
	switch {
	case errors.Is(err, emulator.ErrTorn):
		s.log.Debug("vpcd: APDU torn", "command", hex.EncodeToString(msg))
		return nil, endTorn, nil
	case err != nil:
		r, why, err := s.devError(ctx, "command "+hex.EncodeToString(msg), err)
		if why == goOn {
			r = swNoPreciseDiagnosis
		}
		return r, why, err
	case len(resp) < 2 || len(resp) > 0xFFFF:
		s.log.Error("vpcd: the device answered a malformed response APDU; answering 6F00",
			"command", hex.EncodeToString(msg), "response", hex.EncodeToString(resp))
		return answer(swNoPreciseDiagnosis)
	}
	s.log.Debug("vpcd: APDU", "command", hex.EncodeToString(msg), "response", hex.EncodeToString(resp))
	return answer(resp)
}

// devError handles an error of the device: ctx done ends the session, a
// closed device ends serving, anything else is logged and serving goes on.
func (s *server) devError(ctx context.Context, what string, err error) ([]byte, end, error) {
	switch {
	case ctx.Err() != nil:
		return nil, endDone, nil
	case errors.Is(err, emulator.ErrClosed):
		return nil, endFatal, fmt.Errorf("vpcd: %s: %w", s.addr, err)
	}
	s.log.Error("vpcd: the device failed", "during", what, "err", err)
	return nil, goOn, nil
}

// sleep waits d or until ctx is done; it reports whether ctx is still
// alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
