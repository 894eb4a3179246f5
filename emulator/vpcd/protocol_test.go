package vpcd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/emulator/vpcd"
	"github.com/simtix/simtix/internal/cardtest"
)

// These tests play vpcd's part themselves, to reach what pcscd never asks
// for (failing devices, odd messages) and to time the redials.

// fakeReader is a vpcd slot: it listens, the card dials.
type fakeReader struct {
	t  *testing.T
	ln net.Listener
}

func newFakeReader(t *testing.T) *fakeReader {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	return &fakeReader{t: t, ln: ln}
}

func (r *fakeReader) addr() string { return r.ln.Addr().String() }

// accept waits for the card to dial.
func (r *fakeReader) accept() net.Conn {
	r.t.Helper()
	require.NoError(r.t, r.ln.(*net.TCPListener).SetDeadline(time.Now().Add(5*time.Second)))
	c, err := r.ln.Accept()
	require.NoError(r.t, err)
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// put sends one message as vpcd does: the length, then the payload, in two
// writes.
func put(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	_, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(msg))))
	require.NoError(t, err)
	_, err = c.Write(msg)
	require.NoError(t, err)
}

// get reads one message.
func get(t *testing.T, c net.Conn) ([]byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	_, err := io.ReadFull(c, msg)
	return msg, err
}

func exchange(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	put(t, c, msg)
	resp, err := get(t, c)
	require.NoError(t, err)
	return resp
}

// fakeDevice is the echo card with a Transmit of the test's choosing.
type fakeDevice struct {
	emulator.Echo
	transmit func(cmd []byte) ([]byte, error)
}

func (f *fakeDevice) Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	if f.transmit != nil {
		return f.transmit(cmd)
	}
	return f.Echo.Transmit(ctx, i, cmd)
}

// syncBuffer is a log sink for a Serve goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is a Serve running for a test.
type served struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve has returned
	err    error         // what it returned, once done
}

// wait waits until Serve returns and returns its error.
func (s *served) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

// start runs Serve until the test ends.
func start(t *testing.T, addr string, dev emulator.Device, opts ...vpcd.Option) *served {
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = vpcd.Serve(ctx, addr, dev, applet.Contact, opts...)
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return s
}

var (
	ctrlOff   = []byte{0x00}
	ctrlOn    = []byte{0x01}
	ctrlReset = []byte{0x02}
	ctrlATR   = []byte{0x04}
)

func TestProtocol(t *testing.T) {
	r := newFakeReader(t)
	dev := &emulator.Echo{}
	start(t, r.addr(), dev)
	c := r.accept()
	atr := dev.ATR(applet.Contact)

	assert.Equal(t, atr, exchange(t, c, ctrlATR), "the ATR, powered off")
	put(t, c, ctrlOn)
	assert.Equal(t, atr, exchange(t, c, ctrlATR))
	assert.Equal(t, []byte{0xAB, 0xCD, 0x90, 0x00}, exchange(t, c, []byte{0x00, 0xEE, 0x00, 0x00, 0x02, 0xAB, 0xCD}))
	put(t, c, ctrlReset)
	assert.Equal(t, []byte{0x90, 0x00}, exchange(t, c, []byte{0x00, 0xEE, 0x00, 0x00}))
	put(t, c, ctrlOff)
	assert.Equal(t, atr, exchange(t, c, ctrlATR), "the ATR, powered off again")
	// A command while powered off: pcscd powers a card on before its
	// clients' commands; if its idea of the power is stale, the command
	// powers the interface on first.
	assert.Equal(t, []byte{0x90, 0x00}, exchange(t, c, []byte{0x00, 0xEE, 0x00, 0x00}))
	// Unknown control codes and empty messages are ignored.
	put(t, c, []byte{0x07})
	put(t, c, nil)
	assert.Equal(t, atr, exchange(t, c, ctrlATR))
}

// A device error is logged and answered 6F00; serving goes on.
func TestDeviceErrorAnswers6F00(t *testing.T) {
	r := newFakeReader(t)
	fail := errors.New("saving the card image: disk full")
	calls := 0
	dev := &fakeDevice{transmit: func(cmd []byte) ([]byte, error) {
		calls++
		switch calls {
		case 1:
			return nil, fail
		case 2:
			return nil, nil // no status word: malformed
		}
		return []byte{0x90, 0x00}, nil
	}}
	var logs syncBuffer
	start(t, r.addr(), dev, vpcd.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	c := r.accept()
	put(t, c, ctrlOn)
	assert.Equal(t, []byte{0x6F, 0x00}, exchange(t, c, []byte{0x80, 0xF2, 0x00, 0x00, 0x00}))
	assert.Equal(t, []byte{0x6F, 0x00}, exchange(t, c, []byte{0x80, 0xF2, 0x00, 0x00, 0x00}))
	assert.Equal(t, []byte{0x90, 0x00}, exchange(t, c, []byte{0x80, 0xF2, 0x00, 0x00, 0x00}))
	assert.Contains(t, logs.String(), "disk full")
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "malformed response")
}

// When the reader goes away (pcscd stopped), the card dials again and
// serves the new connection.
func TestRedialsWhenTheReaderGoes(t *testing.T) {
	r := newFakeReader(t)
	start(t, r.addr(), &emulator.Echo{}, vpcd.WithRedialInterval(20*time.Millisecond))
	c := r.accept()
	assert.NotEmpty(t, exchange(t, c, ctrlATR))
	require.NoError(t, c.Close())
	c = r.accept()
	assert.NotEmpty(t, exchange(t, c, ctrlATR))

	// The reader is gone for a while (the port refuses), then back.
	addr := r.addr()
	require.NoError(t, r.ln.Close())
	require.NoError(t, c.Close())
	time.Sleep(100 * time.Millisecond)
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	r.ln = ln
	t.Cleanup(func() { _ = ln.Close() })
	c = r.accept()
	assert.NotEmpty(t, exchange(t, c, ctrlATR))
}

// After a tear the connection ends without an answer, and the card dials
// again only after the tear pause.
func TestTearLeavesTheReader(t *testing.T) {
	r := newFakeReader(t)
	dev := &fakeDevice{transmit: func([]byte) ([]byte, error) { return nil, emulator.ErrTorn }}
	const pause = 300 * time.Millisecond
	start(t, r.addr(), dev, vpcd.WithTearPause(pause), vpcd.WithRedialInterval(10*time.Millisecond))
	c := r.accept()
	put(t, c, ctrlOn)
	put(t, c, []byte{0x80, 0x50, 0x00, 0x00, 0x00})
	torn := time.Now()
	_, err := get(t, c)
	assert.ErrorIs(t, err, io.EOF, "no answer: the connection ends")
	r.accept()
	assert.GreaterOrEqual(t, time.Since(torn), pause, "back only after the tear pause")
}

// A card that lost its power under a powered interface (torn on its other
// interface) leaves the reader at the next presence poll.
func TestTearOnTheOtherInterface(t *testing.T) {
	r := newFakeReader(t)
	card, _ := newCard(t, cardtest.VectorFixture(t).Personalisation(), emulator.Options{})
	start(t, r.addr(), card, vpcd.WithTearPause(time.Hour))
	c := r.accept()
	put(t, c, ctrlOn)
	assert.Equal(t, card.ATR(applet.Contact), exchange(t, c, ctrlATR))
	// What a tear does to the card: every interface off.
	require.NoError(t, card.PowerOff(context.Background(), applet.Contact))
	put(t, c, ctrlATR)
	_, err := get(t, c)
	assert.ErrorIs(t, err, io.EOF, "the card left the reader")
}

// A closed device ends Serve with an error; a malformed address is
// refused at once; cancelling returns nil, connected or dialling.
func TestServeEnds(t *testing.T) {
	r := newFakeReader(t)
	dev := &fakeDevice{transmit: func([]byte) ([]byte, error) { return nil, emulator.ErrClosed }}
	s := start(t, r.addr(), dev)
	c := r.accept()
	put(t, c, ctrlOn)
	put(t, c, []byte{0x80, 0xF2, 0x00, 0x00, 0x00})
	assert.ErrorIs(t, s.wait(t), emulator.ErrClosed)

	err := vpcd.Serve(context.Background(), "no port", &emulator.Echo{}, applet.Contact)
	assert.ErrorContains(t, err, "no port")

	s = start(t, r.addr(), &emulator.Echo{})
	r.accept()
	s.cancel()
	assert.NoError(t, s.wait(t), "cancelled while connected")

	addr := r.addr()
	require.NoError(t, r.ln.Close())
	s = start(t, addr, &emulator.Echo{})
	time.Sleep(50 * time.Millisecond)
	s.cancel()
	assert.NoError(t, s.wait(t), "cancelled while dialling")
}
