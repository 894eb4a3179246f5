// Package cardview draws a card's ticket file for people: `simtix card
// show` and the demo. It reads an applet.Snapshot and changes nothing.
package cardview

import (
	"fmt"
	"io"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardproto"
)

// Width is the number of cells of the ticket file bar.
const Width = 64

// glyphs mark the tickets in the bar, in stored order.
const glyphs = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Bar draws the ticket file as one line of cells, in stored order: each
// unchecked ticket (its encoding and the record overhead) in its own letter,
// each checked one in '#' (reclaimable bytes), free bytes as '.'.
func Bar(s applet.Snapshot, width int) string {
	if width <= 0 || s.Capacity <= 0 {
		return ""
	}
	cells := make([]byte, 0, width)
	used := 0
	for i, t := range s.Tickets {
		used += t.Size()
		end := used * width / s.Capacity
		g := glyphs[i%len(glyphs)]
		if t.State == cardproto.StateChecked {
			g = '#'
		}
		for len(cells) < end {
			cells = append(cells, g)
		}
	}
	for len(cells) < width {
		cells = append(cells, '.')
	}
	return string(cells)
}

// Render writes the card's storage: the bar, the totals and a line per
// ticket.
func Render(w io.Writer, s applet.Snapshot) error {
	p := &printer{w: w}
	used := s.Capacity - s.Free
	p.printf("card %v   capacity %d bytes, %d tickets at most, %d bytes of overhead per ticket\n",
		s.Serial, s.Capacity, s.MaxTickets, s.Overhead)
	p.printf("[%s]\n", Bar(s, Width))
	p.printf(" used %d  free %d  reclaimable %d  (available to the box: %d bytes, %d tickets)\n",
		used, s.Free, s.Reclaimable, s.Free+s.Reclaimable, s.MaxTickets-len(s.Tickets)+checkedCount(s))
	p.printf(" epoch %d  counter %d  certificate %s  notification %s\n",
		s.Epoch, s.Counter, yesNo(s.Certificate != nil), notification(s.Notification))
	if len(s.Tickets) == 0 {
		p.printf(" no tickets\n")
		return p.err
	}
	p.printf("\n  %-2s %-20s %5s  %-9s %-16s %s\n", "", "ticket ID", "bytes", "state", "use", "seller")
	for i, t := range s.Tickets {
		g := string(glyphs[i%len(glyphs)])
		state := "unchecked"
		if t.State == cardproto.StateChecked {
			g, state = "#", "checked"
		}
		p.printf("  %-2s %-20v %5d  %-9s %-16s %s\n", g, t.Ticket.ID, t.Size(), state,
			t.Ticket.Date.String()+" "+t.Ticket.Time.String(), Truncate(t.Ticket.Seller, 30))
		if t.Check != nil {
			p.printf("  %-2s %-20s %5s  by gate %X at %v\n", "", "", "", t.Check.Gate, t.Check.Time)
		}
	}
	return p.err
}

func checkedCount(s applet.Snapshot) int {
	n := 0
	for _, t := range s.Tickets {
		if t.State == cardproto.StateChecked {
			n++
		}
	}
	return n
}

func notification(n applet.NotificationState) string {
	switch {
	case n.Pending == 0:
		return "none"
	case n.Fetched:
		return fmt.Sprintf("%d (fetched)", n.Pending)
	}
	return fmt.Sprintf("%d pending", n.Pending)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Truncate shortens s to n characters (runes), marking the cut with "…".
func Truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
