package contactless_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/contactless"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/ticketfmt"
)

func bytesOf(t *testing.T, c apdu.Command) []byte {
	t.Helper()
	b, err := c.Bytes()
	require.NoError(t, err)
	return b
}

func TestAppletCosts(t *testing.T) {
	check := bytesOf(t, cardproto.Check(ticketfmt.ID{1}, [4]byte{}, ticketfmt.DateTime{}, [16]byte{}))
	ok := append(make([]byte, 64), 0x90, 0x00)
	assert.Equal(t, contactless.Cost{Signs: true, PageWrites: contactless.CheckPageWrites}, contactless.AppletCosts(check, ok))
	assert.Equal(t, contactless.Cost{}, contactless.AppletCosts(check, []byte{0x69, 0x85}), "a refused CHECK")
	onChannel := bytesOf(t, cardproto.OnChannel(cardproto.Check(ticketfmt.ID{1}, [4]byte{}, ticketfmt.DateTime{}, [16]byte{}), 2))
	assert.True(t, contactless.AppletCosts(onChannel, ok).Signs, "on channel 2")
	part := append([]byte(nil), check...)
	part[0] |= apdu.ChainingBit
	assert.Equal(t, contactless.Cost{}, contactless.AppletCosts(part, []byte{0x90, 0x00}), "a part of a chained CHECK")
	assert.Equal(t, contactless.Cost{}, contactless.AppletCosts(bytesOf(t, cardproto.Select()), ok))
	iso := append([]byte(nil), check...)
	iso[0] = 0x00
	assert.Equal(t, contactless.Cost{}, contactless.AppletCosts(iso, ok), "INS 36 in class 00 is another command")
	assert.Equal(t, contactless.Cost{}, contactless.AppletCosts([]byte{0x80}, ok), "not an APDU")
}

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	writes := int64(0)
	card := hostlib.TransportFunc(func(_ context.Context, cmd []byte) ([]byte, error) {
		switch cmd[1] {
		case cardproto.InsCheck:
			writes += 4
			return append(make([]byte, 64), 0x90, 0x00), nil
		case cardproto.InsFind:
			return nil, hostlib.ErrResponseLost
		}
		return []byte{0x90, 0x00}, nil
	})
	check := bytesOf(t, cardproto.Check(ticketfmt.ID{1}, [4]byte{}, ticketfmt.DateTime{}, [16]byte{}))
	sel := bytesOf(t, cardproto.Select())

	// Modelled writes.
	r := contactless.NewRecorder(card)
	_, err := r.Transmit(ctx, sel)
	require.NoError(t, err)
	_, err = r.Transmit(ctx, bytesOf(t, cardproto.Find(cardproto.Query{})))
	require.True(t, errors.Is(err, hostlib.ErrResponseLost))
	resp, err := r.Transmit(ctx, check)
	require.NoError(t, err)
	assert.Len(t, resp, 66)
	steps := r.Steps()
	require.Len(t, steps, 2, "the lost answer is not recorded")
	assert.Equal(t, sel, steps[0].Command)
	assert.Equal(t, contactless.Step{Command: check, Response: resp, Cost: contactless.Cost{Signs: true, PageWrites: 3}}, steps[1])

	m := contactless.DefaultModel(contactless.Rate106)
	assert.Equal(t, m.Exchange(sel, []byte{0x90, 0x00}, 0, false).Add(m.Exchange(check, resp, 3, true)), m.Estimate(steps))
	r.Reset()
	assert.Empty(t, r.Steps())

	// Writes read from the card, and another cost model.
	r = contactless.NewRecorder(card,
		contactless.WithPageWrites(func() int64 { return writes }),
		contactless.WithCosts(func([]byte, []byte) contactless.Cost { return contactless.Cost{PageWrites: 99} }))
	_, err = r.Transmit(ctx, check)
	require.NoError(t, err)
	_, err = r.Transmit(ctx, sel)
	require.NoError(t, err)
	steps = r.Steps()
	assert.Equal(t, contactless.Cost{PageWrites: 4}, steps[0].Cost)
	assert.True(t, steps[0].Measured)
	assert.Equal(t, 0, steps[1].PageWrites)
}
