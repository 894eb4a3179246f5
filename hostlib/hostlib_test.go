package hostlib_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/ticketfmt"
)

// card returns an in-memory emulated card of the vectors' fixture, both
// interfaces powered on, and a harness for making its tickets.
func card(t *testing.T, opts emulator.Options) (*emulator.Card, *cardtest.Harness) {
	f := cardtest.VectorFixture(t)
	ram, err := emulator.Personalise(f.Personalisation())
	require.NoError(t, err)
	c, err := emulator.New(ram, opts)
	require.NoError(t, err)
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		_, err := c.PowerOn(context.Background(), i)
		require.NoError(t, err)
	}
	h := cardtest.NewHarness(t, func(testing.TB, cardtest.Fixture) cardtest.Target { return target{c} }, f)
	return c, h
}

type target struct{ c *emulator.Card }

func (t target) Transmit(ctx context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	return t.c.Transmit(ctx, i, cmd)
}
func (t target) Reset(ctx context.Context, i applet.Interface) error {
	_, err := t.c.PowerOn(ctx, i)
	return err
}

// sync begins a sync and returns the authorisation for the next change.
func sync(t *testing.T, ctx context.Context, a *hostlib.Applet) cardkeys.Authorisation {
	ans, _, err := a.BeginSync(ctx, [16]byte{7})
	require.NoError(t, err)
	return cardkeys.Authorisation{Epoch: ans.Status.Epoch, Counter: ans.Status.Counter}
}

func TestAppletFillAndList(t *testing.T) {
	ctx := context.Background()
	c, h := card(t, emulator.Options{})
	a := hostlib.NewApplet(c.Port(applet.Contact), hostlib.ClientOptions{})
	fci, err := a.Select(ctx)
	require.NoError(t, err)
	require.NotNil(t, fci.Status)
	auth := sync(t, ctx, a)

	stored := 0
	for n := 0; ; n++ {
		ticket := h.Issue(n)
		err := a.Store(ctx, ticket, auth, cardkeys.StoreMAC(h.F.Keys, h.F.Serial, auth, ticket))
		if errors.Is(err, apdu.ErrNotEnoughMemory) {
			var ae *apdu.Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, apdu.SWNotEnoughMemory, ae.SW)
			assert.Contains(t, err.Error(), "STORE")
			break
		}
		require.NoError(t, err)
		auth.Counter++
		stored++
	}
	// LIST is longer than 256 bytes: the client follows 61xx.
	entries, raw, err := a.List(ctx)
	require.NoError(t, err)
	assert.Len(t, entries, stored)
	assert.Greater(t, len(raw), 256)
	ans, _, err := a.BeginSync(ctx, [16]byte{8})
	require.NoError(t, err)
	require.NoError(t, ans.CheckInventory(raw))

	st, err := a.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, stored, st.Stored)
	_, err = a.Read(ctx, ticketfmt.ID{1})
	assert.ErrorIs(t, err, apdu.ErrNotFound)
}

func TestLongCommandsChainedOrExtended(t *testing.T) {
	ctx := context.Background()
	for _, opts := range []hostlib.ClientOptions{{}, {Extended: true}, {ChainSize: 64}} {
		c, h := card(t, emulator.Options{})
		var trace bytes.Buffer
		a := hostlib.NewApplet(hostlib.Trace(c.Port(applet.Contact), &trace, nil), opts)
		_, err := a.Select(ctx)
		require.NoError(t, err)
		auth := sync(t, ctx, a)
		big := h.IssueTicket(&ticketfmt.Ticket{Type: 1, Seller: strings.Repeat("S", 64),
			Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 31}, Time: ticketfmt.TimeOfDay{Hour: 20},
			Seat: strings.Repeat("s", 32), Instructions: strings.Repeat("i", 128)})
		require.NoError(t, a.Store(ctx, big, auth, cardkeys.StoreMAC(h.F.Keys, h.F.Serial, auth, big)))
		got, err := a.Read(ctx, cardtest.ID(t, big))
		require.NoError(t, err)
		assert.Equal(t, big, got.Raw)
		switch {
		case opts.Extended:
			assert.Contains(t, trace.String(), "→ 80 38 00 00 00 01", "one extended APDU")
		case opts.ChainSize == 64:
			assert.Equal(t, 5, strings.Count(trace.String(), "→ 90 38 00 00 40"), "378 bytes: five chained 64-byte parts and the last")
		default:
			assert.Contains(t, trace.String(), "→ 90 38 00 00 FF", "a chain of short APDUs")
		}
	}
}

func TestNotificationAndT0(t *testing.T) {
	ctx := context.Background()
	c, h := card(t, emulator.Options{T0: true})
	a := hostlib.NewApplet(c.Port(applet.Contact), hostlib.ClientOptions{})
	// In T=0 mode SELECT answers 61xx first: the client fetches the FCI.
	fci, err := a.Select(ctx)
	require.NoError(t, err)
	require.NotNil(t, fci.Status)
	require.NoError(t, a.TerminalProfile(ctx, cardproto.DefaultProfile))
	assert.Zero(t, a.Pending())
	auth := sync(t, ctx, a)
	ticket := h.Issue(0)
	require.NoError(t, a.Store(ctx, ticket, auth, cardkeys.StoreMAC(h.F.Keys, h.F.Serial, auth, ticket)))
	assert.Equal(t, 65, a.Pending(), "91xx is success, with the notification's length")
	note, err := a.Fetch(ctx)
	require.NoError(t, err)
	assert.Equal(t, byte(1), note.Number)
	require.NoError(t, a.TerminalResponse(ctx, note.Number, 0))
	assert.Zero(t, a.Pending())
	_, err = a.Fetch(ctx)
	assert.ErrorIs(t, err, apdu.ErrConditionsOfUse)
}

func TestChannels(t *testing.T) {
	ctx := context.Background()
	c, _ := card(t, emulator.Options{})
	a := hostlib.NewApplet(c.Port(applet.Contactless), hostlib.ClientOptions{})
	ch, err := a.OpenChannel(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, ch.Channel())
	_, err = ch.Find(ctx, cardproto.Query{Date: ticketfmt.Date{Year: 2026, Month: 1, Day: 1}})
	assert.ErrorIs(t, err, apdu.ErrNotSelected)
	_, err = ch.Select(ctx)
	require.NoError(t, err)
	_, err = ch.Find(ctx, cardproto.Query{Date: ticketfmt.Date{Year: 2026, Month: 1, Day: 1}})
	assert.ErrorIs(t, err, apdu.ErrNotFound)
	require.NoError(t, ch.CloseChannel(ctx))
	assert.ErrorIs(t, ch.CloseChannel(ctx), apdu.ErrChannelNotSupported)
	assert.Error(t, a.CloseChannel(ctx), "the basic channel stays open")
}

// TestWrongLe: a card that answers 6Cxx (not simtix's, which never does)
// gets the command again with the right Le.
func TestWrongLe(t *testing.T) {
	var sent [][]byte
	card := hostlib.TransportFunc(func(_ context.Context, cmd []byte) ([]byte, error) {
		sent = append(sent, append([]byte(nil), cmd...))
		if cmd[len(cmd)-1] != 0x03 {
			return []byte{0x6C, 0x03}, nil
		}
		return []byte{1, 2, 3, 0x90, 0x00}, nil
	})
	r, err := hostlib.NewClient(card, hostlib.ClientOptions{}).Do(context.Background(), "X", apdu.Command{CLA: 0x80, INS: 0xCA, Ne: 256})
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3}, r.Data)
	assert.Equal(t, [][]byte{{0x80, 0xCA, 0, 0, 0}, {0x80, 0xCA, 0, 0, 3}}, sent)

	endless := hostlib.TransportFunc(func(context.Context, []byte) ([]byte, error) { return []byte{0x61, 0x01}, nil })
	_, err = hostlib.NewClient(endless, hostlib.ClientOptions{}).Do(context.Background(), "X", apdu.Command{CLA: 0x80, INS: 0xCA})
	assert.ErrorContains(t, err, "keeps answering 61xx")
	garbage := hostlib.TransportFunc(func(context.Context, []byte) ([]byte, error) { return []byte{0x90}, nil })
	_, err = hostlib.NewClient(garbage, hostlib.ClientOptions{}).Do(context.Background(), "X", apdu.Command{CLA: 0x80, INS: 0xCA})
	assert.ErrorIs(t, err, apdu.ErrMalformed)
}

func TestRecordAndReplay(t *testing.T) {
	ctx := context.Background()
	c, _ := card(t, emulator.Options{})
	var session bytes.Buffer
	a := hostlib.NewApplet(hostlib.Record(c.Port(applet.Contact), &session), hostlib.ClientOptions{})
	_, err := a.Select(ctx)
	require.NoError(t, err)
	want, err := a.Status(ctx)
	require.NoError(t, err)
	_, err = a.Read(ctx, ticketfmt.ID{})
	require.Error(t, err)
	assert.Equal(t, 3, strings.Count(session.String(), "\n"))

	replay, err := hostlib.NewReplay(bytes.NewReader(session.Bytes()))
	require.NoError(t, err)
	b := hostlib.NewApplet(replay, hostlib.ClientOptions{})
	_, err = b.Select(ctx)
	require.NoError(t, err)
	got, err := b.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.False(t, replay.Done())
	_, err = b.Read(ctx, ticketfmt.ID{1}) // another ID than recorded
	assert.ErrorIs(t, err, hostlib.ErrReplayMismatch)

	_, err = hostlib.NewReplay(strings.NewReader("{\"command\":\"zz\"}\n"))
	assert.Error(t, err)
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	c, h := card(t, emulator.Options{})
	plain := hostlib.NewApplet(c.Port(applet.Contact), hostlib.ClientOptions{})
	_, err := plain.Select(ctx)
	require.NoError(t, err)
	auth := sync(t, ctx, plain)
	store := func(a *hostlib.Applet, n int) error {
		ticket := h.Issue(n)
		return a.Store(ctx, ticket, auth, cardkeys.StoreMAC(h.F.Keys, h.F.Serial, auth, ticket))
	}
	stored := func() int {
		st, err := plain.Status(ctx)
		require.NoError(t, err)
		return st.Stored
	}

	before := hostlib.NewApplet(hostlib.Faults(c.Port(applet.Contact), 0, hostlib.FaultAt(1, hostlib.RemoveBefore)), hostlib.ClientOptions{})
	assert.ErrorIs(t, store(before, 0), hostlib.ErrCardRemoved)
	assert.Equal(t, 0, stored(), "removed before: not applied")

	lost := hostlib.NewApplet(hostlib.Faults(c.Port(applet.Contact), 0, hostlib.FaultAt(1, hostlib.DropResponse)), hostlib.ClientOptions{})
	assert.ErrorIs(t, store(lost, 1), hostlib.ErrResponseLost)
	assert.Equal(t, 1, stored(), "answer lost: applied")
	auth.Counter++

	after := hostlib.NewApplet(hostlib.Faults(c.Port(applet.Contact), 0, hostlib.FaultAt(1, hostlib.RemoveAfter)), hostlib.ClientOptions{})
	assert.ErrorIs(t, store(after, 2), hostlib.ErrCardRemoved)
	assert.Equal(t, 2, stored())

	slow := hostlib.Faults(c.Port(applet.Contact), time.Hour, nil)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = slow.Transmit(cctx, []byte{0x80, 0xF2, 0, 0, 0})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}
