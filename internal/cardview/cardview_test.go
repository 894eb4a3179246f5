package cardview

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/ticketfmt"
)

func TestBar(t *testing.T) {
	tk := &ticketfmt.Ticket{Seller: "S"}
	s := applet.Snapshot{Capacity: 64, Free: 24, Tickets: []applet.StoredTicket{
		{Raw: make([]byte, 8), Ticket: tk, State: cardproto.StateUnchecked}, // 16 bytes with h
		{Raw: make([]byte, 16), Ticket: tk, State: cardproto.StateChecked},  // 24
	}}
	assert.Equal(t, strings.Repeat("A", 16)+strings.Repeat("#", 24)+strings.Repeat(".", 24), Bar(s, 64))
	assert.Equal(t, "AAAA######......", Bar(s, 16))
	assert.Equal(t, "", Bar(applet.Snapshot{}, 16))
}

func TestRender(t *testing.T) {
	tk := &ticketfmt.Ticket{Seller: "Opera", Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}}
	s := applet.Snapshot{Capacity: 2048, MaxTickets: 32, Overhead: 8, Free: 2048 - 183, Tickets: []applet.StoredTicket{
		{Raw: make([]byte, 175), Ticket: tk, State: cardproto.StateChecked, Check: &cardproto.CheckRecord{Gate: [4]byte{1, 2, 3, 4}}},
	}, Reclaimable: 183}
	var b bytes.Buffer
	require.NoError(t, Render(&b, s))
	out := b.String()
	assert.Contains(t, out, "used 183  free 1865  reclaimable 183")
	assert.Contains(t, out, "available to the box: 2048 bytes, 32 tickets")
	assert.Contains(t, out, "by gate 01020304")
	assert.Contains(t, out, "Opera")
}
