package pcsc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ebfe/scard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib/pcsc"
	"github.com/simtix/simtix/internal/pcscd"
)

// statusAPDU is the applet's STATUS command. Any answer does for these
// tests (without a selection it is 6985): they watch when it comes, not
// what it says.
var statusAPDU = []byte{0x80, 0xF2, 0x00, 0x00, 0x00}

// shareWait bounds the waits of these tests.
const shareWait = 10 * time.Second

// twoPrograms starts pcscd with a card on slot 0 and opens two PC/SC
// contexts, as two programs on the machine would; it returns them and the
// card's contact reader.
func twoPrograms(t *testing.T) (a, b *pcsc.Context, reader string) {
	t.Helper()
	d := pcscd.Start(t)
	serve(t, d, emulator.Options{})
	reader = d.ContactReader(0)
	for _, p := range []**pcsc.Context{&a, &b} {
		c, err := pcsc.Open()
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, c.Close()) })
		*p = c
	}
	ctx, cancel := context.WithTimeout(context.Background(), shareWait)
	defer cancel()
	require.NoError(t, a.WaitCard(ctx, reader))
	return a, b, reader
}

// status sends STATUS through k and checks that an answer came.
func status(k *pcsc.Card) error {
	resp, err := k.Transmit(context.Background(), statusAPDU)
	if err != nil {
		return err
	}
	if len(resp) < 2 {
		return fmt.Errorf("answer %X has no status word", resp)
	}
	return nil
}

func transmitOK(t *testing.T, k *pcsc.Card) {
	t.Helper()
	require.NoError(t, status(k))
}

// within runs fn and fails the test if fn fails or has not returned after
// shareWait (then fn is left waiting).
func within(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		require.NoError(t, err, what)
	case <-time.After(shareWait):
		t.Fatalf("%s: still waiting after %v", what, shareWait)
	}
}

// TestExclusiveConnect: while one connection holds the card exclusively,
// another program's connect, shared or exclusive, fails at once with
// ErrCardInUse; it succeeds once the holder has disconnected. An exclusive
// connect fails the same way while a shared connection is open.
func TestExclusiveConnect(t *testing.T) {
	pa, pb, reader := twoPrograms(t)
	shared := pcsc.ConnectOptions{Protocol: pcsc.T1}
	exclusive := pcsc.ConnectOptions{Protocol: pcsc.T1, Exclusive: true}

	holder, err := pa.Connect(reader, exclusive)
	require.NoError(t, err)
	transmitOK(t, holder)

	for name, opts := range map[string]pcsc.ConnectOptions{"shared": shared, "exclusive": exclusive} {
		for prog, p := range map[string]*pcsc.Context{"another program": pb, "the same program": pa} {
			k, err := p.Connect(reader, opts)
			if err == nil {
				_ = k.Close()
			}
			if !assert.ErrorIs(t, err, pcsc.ErrCardInUse, "%s connect from %s", name, prog) {
				continue
			}
			assert.ErrorIs(t, err, scard.ErrSharingViolation, "the PC/SC error is kept")
			assert.Contains(t, err.Error(), reader, "the error names the reader")
		}
	}
	transmitOK(t, holder) // the holder is undisturbed

	require.NoError(t, holder.Close())
	other, err := pb.Connect(reader, shared)
	require.NoError(t, err, "connect after the holder has disconnected")
	transmitOK(t, other)

	// The other way round: a shared connection keeps an exclusive one off.
	_, err = pa.Connect(reader, exclusive)
	require.ErrorIs(t, err, pcsc.ErrCardInUse)
	require.NoError(t, other.Close())
	holder, err = pa.Connect(reader, exclusive)
	require.NoError(t, err, "exclusive connect once the card is free")
	transmitOK(t, holder)
	require.NoError(t, holder.Close())
}

// TestTransaction: while one connection holds a transaction, another
// program's command waits until the transaction ends, and goes at once
// after it (it neither fails nor slips in between), and so does its own
// transaction; a transaction that waits gives up when its context
// ends, without running its function and without keeping the card.
func TestTransaction(t *testing.T) {
	pa, pb, reader := twoPrograms(t)
	opts := pcsc.ConnectOptions{Protocol: pcsc.T1}
	a, err := pa.Connect(reader, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	b, err := pb.Connect(reader, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 4*shareWait)
	defer cancel()

	// b's command waits for the end of a's transaction.
	type result struct {
		err error
		at  time.Time
	}
	transmitted := make(chan result, 1)
	var ended time.Time
	require.NoError(t, a.Transaction(ctx, func() error {
		transmitOK(t, a)
		go func() {
			_, err := b.Transmit(ctx, statusAPDU)
			transmitted <- result{err, time.Now()}
		}()
		select {
		case r := <-transmitted:
			t.Errorf("b's command went through during a's transaction (%v)", r.err)
		case <-time.After(500 * time.Millisecond):
		}
		transmitOK(t, a) // a's own commands go on
		ended = time.Now()
		return nil
	}))
	select {
	case r := <-transmitted:
		require.NoError(t, r.err, "b's command, after a's transaction")
		assert.True(t, r.at.After(ended), "b's command came after the transaction's end")
		// pcsc-lite 1.9.9 lets it go within half a millisecond.
		assert.Less(t, r.at.Sub(ended), 2*time.Second, "b's command goes once a's transaction has ended")
		t.Logf("b's command came %v after the end of a's transaction", r.at.Sub(ended))
	case <-time.After(shareWait):
		t.Fatal("b's command still waits after a's transaction has ended")
	}

	// b's transaction waits for a's too, then runs.
	ran := make(chan struct{})
	bdone := make(chan error, 1)
	require.NoError(t, a.Transaction(ctx, func() error {
		go func() {
			bdone <- b.Transaction(ctx, func() error {
				close(ran)
				return status(b)
			})
		}()
		select {
		case <-ran:
			t.Error("b's transaction began during a's")
		case <-time.After(500 * time.Millisecond):
		}
		return nil
	}))
	select {
	case err := <-bdone:
		require.NoError(t, err)
	case <-time.After(shareWait):
		t.Fatal("b's transaction still waits after a's has ended")
	}
	select {
	case <-ran:
	default:
		t.Error("b's transaction did not run")
	}

	// A waiting transaction gives up when its context ends; once a's has
	// ended, the card is free again for both.
	require.NoError(t, a.Transaction(ctx, func() error {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		gaveUp := make(chan error, 1)
		go func() {
			gaveUp <- b.Transaction(short, func() error {
				t.Error("b's function ran although its transaction gave up")
				return nil
			})
		}()
		select {
		case err := <-gaveUp:
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		case <-time.After(shareWait):
			t.Error("b's transaction still waits after its context has ended")
		}
		return nil
	}))
	for name, k := range map[string]*pcsc.Card{"b": b, "a": a} {
		within(t, name+"'s transaction after b's abandoned one", func() error {
			return k.Transaction(ctx, func() error { return status(k) })
		})
	}

	// The function's error comes back, and the transaction still ends.
	boom := assert.AnError
	require.ErrorIs(t, a.Transaction(ctx, func() error { return boom }), boom)
	within(t, "b's command after a's failed transaction", func() error { return status(b) })
}
