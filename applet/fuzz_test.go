package applet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
)

// FuzzProcess sends random APDU sequences on both interfaces to a card that
// holds a ticket: the card never panics, always answers, and its storage
// invariants hold after every command (free bytes exact, counts within
// limits, counter and epoch never going back).
//
// Input: a sequence of [interface byte, length byte, APDU bytes].
func FuzzProcess(f *testing.F) {
	seed := func(cmds ...apdu.Command) []byte {
		var out []byte
		for i, c := range cmds {
			b, _ := c.Bytes()
			out = append(out, byte(i%2), byte(len(b)))
			out = append(out, b...)
		}
		return out
	}
	f.Add(seed(cardproto.Select(), cardproto.Select(), cardproto.Status(), cardproto.List()))
	f.Add(seed(cardproto.OpenChannel(), cardproto.Find(cardproto.Query{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}})))
	f.Add(seed(cardproto.TerminalProfile([]byte{1}), cardproto.Fetch(), cardproto.TerminalResponse(1, 0)))
	f.Add([]byte{0, 4, 0x90, 0x38, 0, 0, 0, 3, 0x80, 0x38, 0})

	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), make31(7))
	if err != nil {
		f.Fatal(err)
	}
	// One card with a ticket, its memory copied for every input.
	serial := ticketfmt.Serial{1, 2, 3}
	ps, pages := MemoryLayout(512, 4)
	ram := nvm.NewRAM(ps, pages)
	c, err := Personalise(ram, Personalisation{Serial: serial, Capacity: 512, MaxTickets: 4, Master: make([]byte, 32), CardKey: key})
	if err != nil {
		f.Fatal(err)
	}
	keys, _ := cardkeys.Derive(make([]byte, 32), serial)
	tk := ticketfmt.Ticket{Seller: "S", Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, Carrier: serial, Signature: make([]byte, 64)}
	raw, _ := tk.Marshal()
	a := cardkeys.Authorisation{}
	b, _ := cardproto.Store(raw, a, cardkeys.StoreMAC(keys, serial, a, raw)).Bytes()
	c.Reset(Contact)
	sel, _ := cardproto.SelectNoFCI().Bytes()
	if _, err := c.Process(Contact, sel); err != nil {
		f.Fatal(err)
	}
	if _, err := c.Process(Contact, b); err != nil {
		f.Fatal(err)
	}
	image := append([]byte(nil), ram.Bytes()...)

	f.Fuzz(func(t *testing.T, in []byte) {
		mem, err := nvm.RAMFromBytes(ps, image)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Load(mem)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Process(Contact, sel); err != nil {
			t.Fatal(err)
		}
		prev := c.Snapshot()
		for len(in) >= 2 {
			iface, n := Interface(in[0]&1), int(in[1])
			in = in[2:]
			if n > len(in) {
				n = len(in)
			}
			cmd := in[:n]
			in = in[n:]
			out, err := c.Process(iface, cmd)
			if err != nil {
				t.Fatalf("%X: %v", cmd, err)
			}
			if len(out) < 2 {
				t.Fatalf("%X: answer %X without a status word", cmd, out)
			}
			s := c.Snapshot()
			used := 0
			checked := 0
			for _, st := range s.Tickets {
				used += st.Size()
				if st.State == cardproto.StateChecked {
					checked += st.Size()
				}
			}
			if s.Free != s.Capacity-used || s.Free < 0 || s.Reclaimable != checked || len(s.Tickets) > s.MaxTickets {
				t.Fatalf("%X: storage invariants broken: %+v", cmd, s)
			}
			if s.Counter < prev.Counter || s.Epoch < prev.Epoch {
				t.Fatalf("%X: counter or epoch went back", cmd)
			}
			prev = s
		}
	})
}

func make31(b byte) []byte {
	k := make([]byte, 32)
	k[31] = b
	return k
}
