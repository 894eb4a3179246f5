package vpcd

import (
	"fmt"
	"net"
	"strconv"
)

// The reader slots that scripts/pcscd.sh configures: slot n listens on TCP
// port BasePort+n; a card takes two slots, contact on the even one and
// contactless on the odd one. Slots 0 and 1 are Debian's own vpcd reader.
const (
	// BasePort is the TCP port of vpcd's first slot.
	BasePort = 35963
	// MaxSlots is the most slots pcscd can have (its 16 readers).
	MaxSlots = 16
)

// SlotAddr returns the loopback address of vpcd slot n.
func SlotAddr(slot int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(BasePort+slot))
}

// ReaderName returns the PC/SC name of vpcd slot n in scripts/pcscd.sh's
// layout: "Virtual PCD 00 00" and "Virtual PCD 00 01" for slots 0 and 1,
// "Virtual PCD k 00 00" and "Virtual PCD k 00 01" for slots 2k and 2k+1.
// pcscd numbers every vpcd reader entry 00, so each entry after the first
// carries its number in its name.
func ReaderName(slot int) string {
	entry, s := slot/2, slot%2
	if entry == 0 {
		return fmt.Sprintf("Virtual PCD 00 %02X", s)
	}
	return fmt.Sprintf("Virtual PCD %d 00 %02X", entry, s)
}

// SlotOf returns the slot of a vpcd address in scripts/pcscd.sh's layout,
// or false if its port is not one of them.
func SlotOf(addr string) (int, bool) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < BasePort || port >= BasePort+MaxSlots {
		return 0, false
	}
	return port - BasePort, true
}
