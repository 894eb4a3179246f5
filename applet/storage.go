// Package applet is the simtix SIM card as a pure state machine: the card
// runtime's commands and the ticket applet of card-applet.md, over a small
// non-volatile memory interface.
//
// It does no I/O, reads no clock and draws no randomness of its own: the
// emulator feeds it APDUs and persists what it writes, so that tests are
// deterministic and can cut the power at every single write.
package applet

// Storage limits of the ticket file (card-applet.md, "Storage model").
const (
	// DefaultCapacity is the ticket file's default capacity in bytes.
	DefaultCapacity = 2048
	// MinCapacity and MaxCapacity bound the capacity set at personalisation.
	MinCapacity = 256
	MaxCapacity = 32767
	// DefaultMaxTickets is the default maximum ticket count.
	DefaultMaxTickets = 32
	// RecordOverhead is h, the bytes every stored ticket costs beyond its
	// encoding: its record header in the ticket file.
	RecordOverhead = 8
)

// Fit returns how many of the tickets, of the given encoded sizes, a ticket
// file of capacity bytes and maxTickets records takes when they are stored
// in order until the first one that does not fit.
func Fit(sizes []int, capacity, maxTickets int) int {
	free := capacity
	for i, n := range sizes {
		if i >= maxTickets || n+RecordOverhead > free {
			return i
		}
		free -= n + RecordOverhead
	}
	return len(sizes)
}
