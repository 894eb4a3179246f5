package applet

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
	"github.com/simtix/simtix/tlv"
)

// FuzzSequence drives the card of vectors.json with sequences of commands on
// both interfaces that a small generator decodes from the fuzz input: raw
// APDUs, and commands a real handset or gate would send, with valid MACs
// under the card's keys (SELECT, TERMINAL PROFILE, BEGIN SYNC, STORE,
// DELETE, PUT CERTIFICATE, CHECK, FIND, FETCH, TERMINAL RESPONSE, ...),
// each in a valid form or bent in one way, together with power cycles,
// write faults and tears. So it reaches the deep states FuzzProcess's
// random bytes never do: a full card, checked tickets, pending
// notifications, authorisations in use.
//
// After every command it checks the storage invariants (sequenceRun.check):
// the card never panics and always answers; free bytes are exact; the
// counter and the epoch never go back and move by one only on the commands
// that move them; the ticket count stays within the maximum; no ticket ID
// is stored twice; every stored ticket is canonical and bound to the card;
// a refused command changes nothing; a torn command is applied fully or
// not at all. And a generated command that the card must accept is
// accepted, with the effect the spec gives it.
//
// The input is the generator's bytecode (see the op constants). The seeds
// are sequenceSeeds and testdata/fuzz/FuzzSequence.
func FuzzSequence(f *testing.F) {
	fx := newSequenceFixture(f)
	for _, s := range sequenceSeeds() {
		f.Add(s.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fx.run(t, in)
	})
}

// TestSequenceSeedsReachDeepStates checks that the generator does what it
// is for: its seeds store tickets up to a full card, check them, certify
// the card, acknowledge notifications, delete checked tickets and survive
// tears, each under the invariants.
func TestSequenceSeedsReachDeepStates(t *testing.T) {
	fx := newSequenceFixture(t)
	for _, s := range sequenceSeeds() {
		t.Run(s.name, func(t *testing.T) {
			r := fx.run(t, s.in)
			for _, want := range s.reaches {
				assert.True(t, r.reached[want], "the seed should reach %q; it reached %v", want, r.reached)
			}
		})
	}
}

// The generator's operations: one opcode byte (modulo opCount), then its
// operands. Missing operand bytes read as zero.
const (
	opRaw          = iota // interface, length, APDU bytes
	opSelect              // interface, variant (FCI, no FCI, another AID, channel 1-3)
	opProfile             // length (0 and 33 are wrong)
	opBeginSync           // challenge (16 bytes)
	opStore               // pool index, bend
	opDelete              // pick, expected state, bend
	opCertificate         // which certificate, bend
	opCheck               // pick, gate, time, nonce byte
	opFind                // pool index, which optional fields
	opFetch               // -
	opTermResponse        // number (0: the pending one), result
	opStatus              // P1, P2
	opList                // -
	opRead                // pick
	opChannel             // open (even) or close channel n
	opGetResponse         // Le
	opReset               // interface: a power cycle of that interface only
	opPowerCycle          // -: the whole card off and on, reloaded from its memory
	opWriteFault          // write index: the next command's Nth write fails
	opTear                // write index, tear mode: the power is cut at the next command's Nth write
	opAge                 // which: jump the epoch or the counter to just below FFFFFFFF
	opCount
)

// maxSequenceSteps bounds one input's operations.
const maxSequenceSteps = 80

// sequenceFixture is the card every input starts from, and the objects the
// generator sends it.
type sequenceFixture struct {
	image    []byte // the personalised card's memory
	pageSize int
	serial   ticketfmt.Serial
	keys     cardkeys.Keys
	// cert is the card's certificate (vectors.json); otherCert names
	// another serial.
	cert, otherCert []byte
	// pool holds signed tickets bound to the card, with distinct IDs.
	pool [][]byte
	// foreign is a ticket bound to another card; bent is pool[0] made
	// non-canonical (a date that does not exist).
	foreign, bent []byte
}

// Capacity and ticket count of the fuzzed card: small enough that a few
// STOREs fill it by bytes or by count.
const (
	sequenceCapacity   = 640
	sequenceMaxTickets = 4
)

func newSequenceFixture(tb testing.TB) *sequenceFixture {
	v, err := testvectors.Load()
	require.NoError(tb, err)
	fx := &sequenceFixture{cert: v.CardCertificateE5}
	copy(fx.serial[:], v.Serial)
	fx.keys, err = cardkeys.Derive(v.MasterSecret, fx.serial)
	require.NoError(tb, err)
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.CardPrivateScalar)
	require.NoError(tb, err)
	ps, pages := MemoryLayout(sequenceCapacity, sequenceMaxTickets)
	ram := nvm.NewRAM(ps, pages)
	_, err = Personalise(ram, Personalisation{Serial: fx.serial, Capacity: sequenceCapacity,
		MaxTickets: sequenceMaxTickets, Master: v.MasterSecret, CardKey: key})
	require.NoError(tb, err)
	fx.image, fx.pageSize = append([]byte(nil), ram.Bytes()...), ps

	cert, err := ticketfmt.UnmarshalCertificate(v.CardCertificateE5)
	require.NoError(tb, err)
	cert.Serial[0] ^= 0xFF
	fx.otherCert, err = cert.Marshal()
	require.NoError(tb, err)

	// The card does not verify ticket signatures (gates do): a fixed
	// signature keeps the pool the same in every fuzz worker.
	ts, err := corpus.Tickets()
	require.NoError(tb, err)
	sign := func(t ticketfmt.Ticket, id byte, carrier ticketfmt.Serial) []byte {
		t.ID, t.Carrier = ticketfmt.ID{0xF0, id}, carrier
		sig := sha512.Sum512([]byte{id})
		t.Signature = sig[:]
		raw, err := t.Marshal()
		require.NoError(tb, err)
		return raw
	}
	for i := range 8 {
		fx.pool = append(fx.pool, sign(ts[i], byte(i+1), fx.serial))
	}
	other := fx.serial
	other[9] ^= 1
	fx.foreign = sign(ts[8], 0x80, other)
	fx.bent = bytes.Clone(fx.pool[0])
	d := bytes.Index(fx.bent, ts[0].Date.AppendBCD([]byte{byte(ticketfmt.TagDate), 4}))
	require.Positive(tb, d, "the date field of pool[0]")
	fx.bent[d+4] = 0x13 // month 13
	return fx
}

// sequenceRun is one input's run.
type sequenceRun struct {
	t   testing.TB
	fx  *sequenceFixture
	in  []byte
	ram *nvm.RAM
	mem *nvm.Faulty
	c   *Card
	// img is the card's committed image after the last command, snap its
	// decoded form.
	img  []byte
	snap Snapshot
	// fault is armed for the next command (Kind NoFault: none).
	fault nvm.Fault
	// tangled: the last command sent met a pending chain (metChain).
	tangled bool
	// reached names the deep states the run went through.
	reached map[string]bool
}

// run decodes in and runs it on a fresh copy of the fixture's card.
func (fx *sequenceFixture) run(t testing.TB, in []byte) *sequenceRun {
	ram, err := nvm.RAMFromBytes(fx.pageSize, fx.image)
	require.NoError(t, err)
	r := &sequenceRun{t: t, fx: fx, in: in, ram: ram, mem: nvm.NewFaulty(ram, nvm.Fault{}), reached: map[string]bool{}}
	r.c, err = Load(r.mem)
	require.NoError(t, err)
	r.img, r.snap = encode(r.c.p, r.c.s), r.c.Snapshot()
	for steps := 0; len(r.in) > 0 && steps < maxSequenceSteps; steps++ {
		r.step()
	}
	return r
}

func (r *sequenceRun) byte() byte {
	if len(r.in) == 0 {
		return 0
	}
	b := r.in[0]
	r.in = r.in[1:]
	return b
}

func (r *sequenceRun) bytes(n int) []byte {
	out := make([]byte, n)
	copy(out, r.in)
	r.in = r.in[min(n, len(r.in)):]
	return out
}

func iface(b byte) Interface { return Interface(b & 1) }

// known reports whether the outcome of the generated applet command just
// sent on interface i's basic channel is the one the spec gives it: the
// applet is selected there, and the command did not meet a chain an
// earlier raw command left pending (which it would join, or be refused by
// with 6883). The card's own commands (SELECT, TERMINAL PROFILE, FETCH,
// TERMINAL RESPONSE) need no selection: for them, r.tangled alone.
func (r *sequenceRun) known(i Interface) bool {
	return r.c.iface[i].ch[0].selected && !r.tangled
}

// metChain reports whether cmd, about to be sent on interface i, meets a
// chain pending on its basic channel: it continues it (same INS, P1, P2)
// or, having the chaining bit itself, is refused by it.
func (r *sequenceRun) metChain(i Interface, cmd []byte) bool {
	if len(cmd) < 4 || cmd[0]&0x43 != 0 {
		return false
	}
	p := r.c.iface[i].ch[0].chain
	return p != nil && (cmd[0]&apdu.ChainingBit != 0 || p.ins == cmd[1] && p.p1 == cmd[2] && p.p2 == cmd[3])
}

// auth is the authorisation the card takes now, or one bent as bend says:
// 1 a past epoch, 2 a wrong counter, 3 a wrong MAC (see mac).
func (r *sequenceRun) auth(bend byte) cardkeys.Authorisation {
	a := cardkeys.Authorisation{Epoch: r.snap.Epoch, Counter: r.snap.Counter}
	switch bend {
	case 1:
		a.Epoch--
	case 2:
		a.Counter++
	}
	return a
}

func bentMAC(mac []byte, bend byte) []byte {
	if bend == 3 {
		mac = bytes.Clone(mac)
		mac[0] ^= 1
	}
	return mac
}

// pick returns the ID of a stored ticket (low bit 0) or of a pool ticket,
// stored or not.
func (r *sequenceRun) pick(b byte) ticketfmt.ID {
	if b&1 == 0 && len(r.snap.Tickets) > 0 {
		return r.snap.Tickets[int(b>>1)%len(r.snap.Tickets)].Ticket.ID
	}
	t, err := ticketfmt.Unmarshal(r.fx.pool[int(b>>1)%len(r.fx.pool)])
	require.NoError(r.t, err)
	return t.ID
}

func (r *sequenceRun) stored(id ticketfmt.ID) *StoredTicket {
	for i := range r.snap.Tickets {
		if r.snap.Tickets[i].Ticket.ID == id {
			return &r.snap.Tickets[i]
		}
	}
	return nil
}

func encodeCmd(t testing.TB, c apdu.Command) []byte {
	b, err := c.Bytes()
	require.NoError(t, err)
	return b
}

// Dates and times the generator checks tickets with.
var (
	sequenceGates = [][4]byte{{'G', 'A', 'T', 'E'}, {'G', '2', 0, 1}}
	sequenceTimes = [][]byte{
		ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, Hour: 19, Minute: 15}.AppendBCD(nil),
		ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2027, Month: 1, Day: 31}, Hour: 23, Minute: 59, Second: 59}.AppendBCD(nil),
		{0x20, 0x26, 0x13, 0x01, 0x10, 0x00, 0x00}, // month 13
		{0x20, 0x26, 0x02, 0x30, 0x10, 0x00, 0x00}, // 30 February
	}
)

// step decodes and runs one operation.
func (r *sequenceRun) step() {
	t := r.t
	op := r.byte() % opCount
	armed := r.fault.Kind != nvm.NoFault
	switch op {
	case opRaw:
		i, n := iface(r.byte()), int(r.byte())
		r.send(i, r.bytes(min(n, len(r.in))))

	case opSelect:
		i, v := iface(r.byte()), r.byte()
		cmd := cardproto.Select()
		switch v % 6 {
		case 1:
			cmd = cardproto.SelectNoFCI()
		case 2:
			cmd = cardproto.SelectAID([]byte{0xA0, 0, 0, 0, 0x87, 0x10, 0x02})
		case 3, 4, 5:
			cmd = cardproto.OnChannel(cmd, int(v%6)-2)
		}
		sw, data, ok := r.send(i, encodeCmd(t, cmd))
		if ok && !armed && !r.tangled && v%6 == 0 {
			r.expect(sw, "SELECT", true)
			fci, err := cardproto.ParseFCI(data)
			require.NoError(t, err, "SELECT's FCI")
			if i == Contact {
				require.NotNil(t, fci.Status)
				r.checkStatus(*fci.Status)
			} else {
				require.Nil(t, fci.Status, "a contactless reader does not see the status template")
			}
			require.Equal(t, r.snap.Certificate, fci.Certificate, "SELECT's certificate")
		}

	case opProfile:
		n := int(r.byte() % 34)
		sw, _, ok := r.send(Contact, encodeCmd(t, cardproto.TerminalProfile(r.bytes(n))))
		if ok && !armed && !r.tangled && n >= 1 && n <= 32 {
			r.expect(sw, "TERMINAL PROFILE", true)
		}

	case opBeginSync:
		var ch [cardkeys.ChallengeSize]byte
		copy(ch[:], r.bytes(len(ch)))
		before := r.snap
		sw, data, ok := r.send(Contact, encodeCmd(t, cardproto.BeginSync(ch)))
		if !ok || armed || !r.known(Contact) {
			return
		}
		if before.Epoch == 0xFFFFFFFF {
			require.Equal(t, apdu.SWStaleAuthorization, sw, "BEGIN SYNC at the last epoch")
			return
		}
		r.expect(sw, "BEGIN SYNC", true)
		require.Equal(t, before.Epoch+1, r.snap.Epoch, "BEGIN SYNC starts the next epoch")
		ans, err := cardproto.ParseSync(data)
		require.NoError(t, err)
		require.NoError(t, ans.Verify(r.fx.keys, ch[:]), "BEGIN SYNC's MAC")
		r.checkStatus(ans.Status)
		require.NoError(t, ans.CheckInventory(r.c.inventory()), "BEGIN SYNC's inventory digest is LIST's")
		r.reached["sync"] = true

	case opStore:
		k, bend := int(r.byte())%len(r.fx.pool), r.byte()%8
		raw := r.fx.pool[k]
		switch bend {
		case 4:
			raw = r.fx.foreign
		case 5:
			raw = r.fx.bent
		}
		a := r.auth(bend)
		cmd := cardproto.Store(raw, a, bentMAC(cardkeys.StoreMAC(r.fx.keys, r.fx.serial, cardkeys.Authorisation{Epoch: r.snap.Epoch, Counter: r.snap.Counter}, raw), bend))
		if bend == 1 || bend == 2 {
			cmd = cardproto.Store(raw, a, cardkeys.StoreMAC(r.fx.keys, r.fx.serial, a, raw))
		}
		id := r.pick(byte(k<<1 | 1))
		before := r.snap
		fits := before.Free >= len(raw)+RecordOverhead && len(before.Tickets) < before.MaxTickets
		var sw apdu.StatusWord
		var ok bool
		switch bend {
		case 6: // chained: two parts
			data := cmd.Data
			first := apdu.Command{CLA: cmd.CLA | apdu.ChainingBit, INS: cmd.INS, Data: data[:len(data)/2]}
			if psw, _, pok := r.send(Contact, encodeCmd(t, first)); pok && !armed && r.known(Contact) {
				require.Equal(t, apdu.SWSuccess, psw, "a chained part before the last answers 9000")
			}
			armed = r.fault.Kind != nvm.NoFault
			// The last part meets the first part's chain: it is known if
			// the first part was.
			firstTangled := r.tangled
			sw, _, ok = r.send(Contact, encodeCmd(t, apdu.Command{CLA: cmd.CLA, INS: cmd.INS, Data: data[len(data)/2:]}))
			r.tangled = firstTangled
		case 7: // extended form
			cmd.Extended = true
			sw, _, ok = r.send(Contact, encodeCmd(t, cmd))
		default:
			sw, _, ok = r.send(Contact, encodeCmd(t, cmd))
		}
		if !ok || armed || !r.known(Contact) {
			return
		}
		switch {
		case bend == 3:
			require.Equal(t, apdu.SWSecurityStatus, sw, "STORE with a wrong MAC")
		case bend == 1 || bend == 2 || before.Counter == 0xFFFFFFFF:
			require.Equal(t, apdu.SWStaleAuthorization, sw, "STORE with a stale authorisation")
		case bend == 4 || bend == 5:
			require.Equal(t, apdu.SWWrongData, sw, "STORE of a foreign or non-canonical ticket")
		case r.storedIn(before, id):
			require.Equal(t, apdu.SWAlreadyExists, sw, "STORE of a stored ID")
		case !fits:
			require.Equal(t, apdu.SWNotEnoughMemory, sw, "STORE on a full card")
			r.reached["full"] = true
		default:
			r.expect(sw, "STORE", true)
			require.Equal(t, before.Counter+1, r.snap.Counter, "STORE uses the authorisation")
			require.Equal(t, raw, r.snap.Tickets[len(r.snap.Tickets)-1].Raw, "STORE appends the ticket")
			r.reached["stored"] = true
			if len(r.snap.Tickets) == r.snap.MaxTickets {
				r.reached["count full"] = true
			}
		}

	case opDelete:
		id, want, bend := r.pick(r.byte()), r.byte()%3, r.byte()%4
		a := r.auth(bend)
		mac := bentMAC(cardkeys.DeleteMAC(r.fx.keys, r.fx.serial, a, id, want), bend)
		before := r.snap
		sw, _, ok := r.send(Contact, encodeCmd(t, cardproto.Delete(id, want, a, mac)))
		if !ok || armed || !r.known(Contact) {
			return
		}
		st := r.storedIn(before, id)
		switch {
		case want > 1:
			require.Equal(t, apdu.SWWrongData, sw, "DELETE expecting state %02X", want)
		case bend == 3:
			require.Equal(t, apdu.SWSecurityStatus, sw, "DELETE with a wrong MAC")
		case bend != 0 || before.Counter == 0xFFFFFFFF:
			require.Equal(t, apdu.SWStaleAuthorization, sw, "DELETE with a stale authorisation")
		case !st:
			require.Equal(t, apdu.SWReferenceNotFound, sw, "DELETE of a ticket not stored")
		case r.stateIn(before, id) != want:
			require.Equal(t, apdu.SWConditionsNotSatisfied, sw, "DELETE in another state")
		default:
			r.expect(sw, "DELETE", true)
			require.Equal(t, before.Counter+1, r.snap.Counter)
			require.Nil(t, r.stored(id), "DELETE removes the ticket")
			r.reached["deleted"] = true
			if want == cardproto.StateChecked {
				r.reached["deleted checked"] = true
			}
		}

	case opCertificate:
		which, bend := r.byte()%2, r.byte()%4
		cert := r.fx.cert
		if which == 1 {
			cert = r.fx.otherCert
		}
		a := r.auth(bend)
		mac := bentMAC(cardkeys.CertMAC(r.fx.keys, r.fx.serial, a, cert), bend)
		before := r.snap
		sw, _, ok := r.send(Contact, encodeCmd(t, cardproto.PutCertificate(cert, a, mac)))
		if !ok || armed || !r.known(Contact) {
			return
		}
		switch {
		case bend == 3:
			require.Equal(t, apdu.SWSecurityStatus, sw)
		case bend != 0 || before.Counter == 0xFFFFFFFF:
			require.Equal(t, apdu.SWStaleAuthorization, sw)
		case which == 1:
			require.Equal(t, apdu.SWWrongData, sw, "a certificate for another card")
		default:
			r.expect(sw, "PUT CERTIFICATE", true)
			require.Equal(t, cert, r.snap.Certificate)
			r.reached["certified"] = true
		}

	case opCheck:
		id, g, w, n := r.pick(r.byte()), r.byte(), r.byte(), r.byte()
		gate, when := sequenceGates[int(g)%len(sequenceGates)], sequenceTimes[int(w)%len(sequenceTimes)]
		nonce := [cardkeys.NonceSize]byte{n}
		data := build(func(b *tlv.Builder) {
			b.AddBytes(ticketfmt.TagID, id[:])
			b.AddBytes(cardproto.TagGateID, gate[:])
			b.AddBytes(cardproto.TagCheckTime, when)
			b.AddBytes(cardproto.TagNonce, nonce[:])
		})
		before := r.snap
		sw, resp, ok := r.send(Contactless, encodeCmd(t, apdu.Command{CLA: cardproto.ClaProprietary, INS: cardproto.InsCheck, Data: data, Ne: 256}))
		if !ok || armed || !r.known(Contactless) {
			return
		}
		prior := r.storedTicket(before, id)
		switch {
		case int(w)%len(sequenceTimes) >= 2:
			require.Equal(t, apdu.SWWrongData, sw, "CHECK at a time that does not exist")
		case prior == nil:
			require.Equal(t, apdu.SWReferenceNotFound, sw, "CHECK of a ticket not stored")
		case prior.State == cardproto.StateChecked && !(prior.Check.Gate == gate && bytes.Equal(prior.Check.Time.AppendBCD(nil), when)):
			require.Equal(t, apdu.SWConditionsNotSatisfied, sw, "CHECK of a ticket checked otherwise")
		default:
			require.Equal(t, apdu.SWSuccess, sw, "CHECK (the gate never sees 91xx)")
			receipt, err := cardproto.ParseReceipt(resp)
			require.NoError(t, err)
			msg := cardkeys.ReceiptMessage(r.fx.serial, prior.Raw, gate[:], when, nonce[:])
			require.NoError(t, cardkeys.VerifyReceipt(r.c.PublicKey(), msg, receipt), "the receipt verifies with the card key")
			require.Equal(t, cardproto.StateChecked, r.stored(id).State)
			r.reached["checked"] = true
		}

	case opFind:
		k, opts := int(r.byte())%len(r.fx.pool), r.byte()
		tk, err := ticketfmt.Unmarshal(r.fx.pool[k])
		require.NoError(t, err)
		q := cardproto.Query{Date: tk.Date}
		if opts&1 != 0 {
			q.Type = &tk.Type
		}
		if opts&2 != 0 {
			q.Seller = tk.Seller
		}
		if opts&4 != 0 {
			q.NotBefore = &tk.Time
		}
		sw, data, ok := r.send(Contactless, encodeCmd(t, cardproto.Find(q)))
		if ok && !armed && r.known(Contactless) && sw == apdu.SWSuccess {
			ts, err := cardproto.ParseTicketState(data)
			require.NoError(t, err, "FIND's answer")
			require.Equal(t, cardproto.StateUnchecked, ts.State, "FIND finds unchecked tickets")
			require.Equal(t, tk.Date, ts.Ticket.Date)
		}

	case opFetch:
		pending := r.snap.Notification.Pending
		sw, data, ok := r.send(Contact, encodeCmd(t, cardproto.Fetch()))
		if !ok || armed || r.tangled {
			return
		}
		if pending == 0 {
			require.Equal(t, apdu.SWConditionsNotSatisfied, sw, "FETCH with nothing pending")
			return
		}
		require.Equal(t, apdu.SWSuccess, sw, "FETCH answers 9000")
		n, err := cardproto.ParseNotification(data)
		require.NoError(t, err)
		require.Equal(t, pending, n.Number)
		r.checkStatus(n.Status)
		r.reached["fetched"] = true

	case opTermResponse:
		number, result := r.byte(), r.byte()
		pending := r.snap.Notification.Pending
		if number == 0 {
			number = pending
		}
		sw, _, ok := r.send(Contact, encodeCmd(t, cardproto.TerminalResponse(number, result)))
		if !ok || armed || r.tangled {
			return
		}
		switch {
		case pending == 0:
			require.Equal(t, apdu.SWConditionsNotSatisfied, sw, "TERMINAL RESPONSE with nothing pending")
		case number != pending:
			require.Equal(t, apdu.SWWrongData, sw, "TERMINAL RESPONSE with another number")
		default:
			r.expect(sw, "TERMINAL RESPONSE", true)
			r.reached["acknowledged"] = true
		}

	case opStatus:
		p1, p2 := r.byte()%4, []byte{0x00, 0x01, 0x0C, 0x02}[r.byte()%4]
		sw, data, ok := r.send(Contact, encodeCmd(t, apdu.Command{CLA: cardproto.ClaProprietary, INS: cardproto.InsStatus, P1: p1, P2: p2, Ne: 256}))
		if ok && !armed && len(data) > 0 && (sw == apdu.SWSuccess || isNotification(sw)) {
			st, err := cardproto.ParseStatus(data)
			require.NoError(t, err)
			r.checkStatus(st)
		}

	case opList:
		sw, data, ok := r.send(Contact, encodeCmd(t, cardproto.List()))
		if ok && !armed && r.known(Contact) {
			r.expect(sw, "LIST", false)
			if sw == apdu.SWSuccess || isNotification(sw) {
				entries, err := cardproto.ParseList(data)
				require.NoError(t, err, "LIST's answer")
				require.Len(t, entries, len(r.snap.Tickets))
				for i, e := range entries {
					st := r.snap.Tickets[i]
					require.Equal(t, st.Ticket.ID, e.ID, "LIST in stored order")
					require.Equal(t, len(st.Raw), e.Length)
					require.Equal(t, st.State, e.State)
				}
			}
		}

	case opRead:
		id := r.pick(r.byte())
		sw, data, ok := r.send(Contact, encodeCmd(t, cardproto.Read(id)))
		if ok && !armed && r.known(Contact) && (sw == apdu.SWSuccess || isNotification(sw)) {
			ts, err := cardproto.ParseTicketState(data)
			require.NoError(t, err)
			require.NotNil(t, r.stored(id))
			require.Equal(t, r.stored(id).Raw, ts.Raw)
		}

	case opChannel:
		i, b := iface(r.byte()), r.byte()
		cmd := cardproto.OpenChannel()
		if b&1 == 1 {
			cmd = cardproto.CloseChannel(int(b>>1) % 4)
		}
		r.send(i, encodeCmd(t, cmd))

	case opGetResponse:
		i, le := iface(r.byte()), int(r.byte())
		if le == 0 {
			le = 256
		}
		r.send(i, encodeCmd(t, cardproto.GetResponse(le)))

	case opReset:
		r.c.Reset(iface(r.byte()))

	case opPowerCycle:
		r.powerCycle()

	case opWriteFault:
		r.fault = nvm.Fault{Kind: nvm.FailWrite, At: int(r.byte()%3) + 1}

	case opTear:
		at, mode := int(r.byte()%3)+1, nvm.TearMode(r.byte()%3)
		r.fault = nvm.Fault{Kind: nvm.Tear, At: at, Mode: mode}

	case opAge:
		next := r.c.s.clone()
		if r.byte()&1 == 0 {
			next.epoch = max(next.epoch, 0xFFFFFFFE)
		} else {
			next.counter = max(next.counter, 0xFFFFFFFE)
		}
		require.NoError(t, r.c.commit(next))
		r.img, r.snap = encode(r.c.p, r.c.s), r.c.Snapshot()
	}
}

func isNotification(sw apdu.StatusWord) bool {
	_, ok := sw.Notification()
	return ok
}

// expect checks that a generated command the card must take succeeded:
// 9000, or 91xx on the contact interface (a notification is pending after
// TERMINAL PROFILE). notify says whether 91xx is possible.
func (r *sequenceRun) expect(sw apdu.StatusWord, what string, notify bool) {
	r.t.Helper()
	if sw == apdu.SWSuccess || notify && isNotification(sw) {
		return
	}
	if isNotification(sw) {
		// LIST and other reads answer 91xx too once TERMINAL PROFILE was
		// sent and a notification is pending.
		require.True(r.t, r.c.iface[Contact].profile, "%s: 91xx before TERMINAL PROFILE", what)
		return
	}
	r.t.Fatalf("%s: the card answered %v, want success; card %+v", what, sw, r.snap)
}

func (r *sequenceRun) storedTicket(s Snapshot, id ticketfmt.ID) *StoredTicket {
	for i := range s.Tickets {
		if s.Tickets[i].Ticket.ID == id {
			return &s.Tickets[i]
		}
	}
	return nil
}

func (r *sequenceRun) storedIn(s Snapshot, id ticketfmt.ID) bool { return r.storedTicket(s, id) != nil }

func (r *sequenceRun) stateIn(s Snapshot, id ticketfmt.ID) byte { return r.storedTicket(s, id).State }

// checkStatus checks a status template the card answered against its
// state.
func (r *sequenceRun) checkStatus(st cardproto.StatusTemplate) {
	s := r.snap
	checked := 0
	for _, tk := range s.Tickets {
		if tk.State == cardproto.StateChecked {
			checked++
		}
	}
	want := cardproto.StatusTemplate{Capacity: s.Capacity, Free: s.Free, Reclaimable: s.Reclaimable, MaxTickets: s.MaxTickets,
		Stored: len(s.Tickets), Checked: checked, Overhead: RecordOverhead, Counter: s.Counter, Serial: s.Serial,
		Version: Version, Epoch: s.Epoch}
	require.Equal(r.t, want, st, "the status template tells the card's state")
}

// send runs one command (with the armed fault, if any) and checks the
// invariants. ok is false when the power was cut: there is no answer.
func (r *sequenceRun) send(i Interface, cmd []byte) (sw apdu.StatusWord, data []byte, ok bool) {
	t := r.t
	armed := r.fault
	r.fault = nvm.Fault{}
	r.tangled = r.metChain(i, cmd)
	var twin *Card
	if armed.Kind == nvm.Tear {
		twin = r.twin()
	}
	if armed.Kind != nvm.NoFault {
		r.mem.SetFault(nvm.Fault{Kind: armed.Kind, At: r.mem.Writes() + armed.At, Mode: armed.Mode})
	}
	out, err := r.c.Process(i, cmd)
	r.mem.SetFault(nvm.Fault{})
	if err != nil {
		if armed.Kind != nvm.Tear || !errors.Is(err, nvm.ErrPowerLost) {
			t.Fatalf("%X on %v: %v", cmd, i, err)
		}
		// As the emulator does: both interfaces lose power; the card comes
		// back from its memory.
		_, terr := twin.Process(i, cmd)
		require.NoError(t, terr)
		after := encode(twin.p, twin.s)
		r.mem.PowerOn()
		c, lerr := Load(r.mem)
		require.NoError(t, lerr, "the card powers on after a tear")
		now := encode(c.p, c.s)
		if !bytes.Equal(now, r.img) && !bytes.Equal(now, after) {
			t.Fatalf("%X torn at write %d: the card came back neither before nor after the command", cmd, armed.At)
		}
		r.c = c
		r.reached["torn"] = true
		r.settle(cmd, apdu.SWSuccess, bytes.Equal(now, after))
		return 0, nil, false
	}
	if len(out) < 2 {
		t.Fatalf("%X on %v: answer %X without a status word", cmd, i, out)
	}
	sw = apdu.StatusWord(out[len(out)-2])<<8 | apdu.StatusWord(out[len(out)-1])
	if i == Contactless && isNotification(sw) {
		t.Fatalf("%X: the contactless interface answered %v", cmd, sw)
	}
	if armed.Kind == nvm.FailWrite && sw == apdu.SWWriteFailed {
		r.reached["write failed"] = true
	}
	r.settle(cmd, sw, true)
	return sw, out[:len(out)-2], true
}

// twin returns a copy of the card, volatile state included, on a copy of
// its memory.
func (r *sequenceRun) twin() *Card {
	ram, err := nvm.RAMFromBytes(r.fx.pageSize, r.ram.Bytes())
	require.NoError(r.t, err)
	c, err := Load(ram)
	require.NoError(r.t, err)
	c.t0 = r.c.t0
	c.iface = r.c.iface
	for i := range c.iface {
		for n := range c.iface[i].ch {
			ch := &c.iface[i].ch[n]
			ch.resp = bytes.Clone(ch.resp)
			if ch.chain != nil {
				cp := *ch.chain
				cp.data = bytes.Clone(cp.data)
				ch.chain = &cp
			}
		}
	}
	return c
}

// powerCycle turns the card off and on: it must come back exactly as it
// was.
func (r *sequenceRun) powerCycle() {
	r.mem.PowerOn()
	c, err := Load(r.mem)
	require.NoError(r.t, err)
	require.Equal(r.t, r.img, encode(c.p, c.s), "the card keeps its state across a power cycle")
	r.c = c
	r.reached["power cycle"] = true
}

// settle checks the invariants after a command (applied says whether it
// may have changed the card: false after a tear that kept the old state)
// and keeps the new state.
func (r *sequenceRun) settle(cmd []byte, sw apdu.StatusWord, applied bool) {
	t := r.t
	img := encode(r.c.p, r.c.s)
	if bytes.Equal(img, r.img) {
		return
	}
	_, more := sw.MoreData()
	if applied && sw != apdu.SWSuccess && !isNotification(sw) && !more {
		t.Fatalf("%X answered %v but changed the card", cmd, sw)
	}
	s, prev := r.c.Snapshot(), r.snap
	if err := invariants(s); err != nil {
		t.Fatalf("%X: %v", cmd, err)
	}
	switch {
	case s.Counter < prev.Counter || s.Epoch < prev.Epoch:
		t.Fatalf("%X: counter %d→%d, epoch %d→%d: gone back", cmd, prev.Counter, s.Counter, prev.Epoch, s.Epoch)
	case s.Counter-prev.Counter > 1 || s.Epoch-prev.Epoch > 1:
		t.Fatalf("%X: counter %d→%d, epoch %d→%d: more than one step", cmd, prev.Counter, s.Counter, prev.Epoch, s.Epoch)
	}
	ins := insOf(cmd)
	if s.Counter != prev.Counter && ins != cardproto.InsStore && ins != cardproto.InsDelete && ins != cardproto.InsPutCertificate {
		t.Fatalf("%X: the counter moved on a command that takes no authorisation", cmd)
	}
	if s.Epoch != prev.Epoch && ins != cardproto.InsBeginSync {
		t.Fatalf("%X: the epoch moved on a command other than BEGIN SYNC", cmd)
	}
	if storageChanged(prev, s) && s.Notification.Pending == 0 {
		t.Fatalf("%X: the storage changed and no notification is pending", cmd)
	}
	for _, st := range s.Tickets {
		if st.State == cardproto.StateChecked {
			r.reached["holds checked"] = true
		}
	}
	r.img, r.snap = img, s
}

// invariants checks a card's storage: free bytes exact, reclaimable bytes
// those of the checked tickets, the ticket count within the maximum, no ID
// twice, every ticket canonical, bound to the card and in a known state, a
// checked one with a valid check record.
func invariants(s Snapshot) error {
	used, reclaimable := 0, 0
	ids := map[ticketfmt.ID]bool{}
	for _, st := range s.Tickets {
		used += st.Size()
		if ids[st.Ticket.ID] {
			return fmt.Errorf("ticket %v stored twice", st.Ticket.ID)
		}
		ids[st.Ticket.ID] = true
		switch st.State {
		case cardproto.StateChecked:
			reclaimable += st.Size()
			if st.Check == nil {
				return fmt.Errorf("checked ticket %v without a valid check record", st.Ticket.ID)
			}
		case cardproto.StateUnchecked:
		default:
			return fmt.Errorf("ticket %v in state %02X", st.Ticket.ID, st.State)
		}
		again, err := st.Ticket.Marshal()
		if err != nil || !bytes.Equal(again, st.Raw) {
			return fmt.Errorf("stored ticket %X is not canonical (%v)", st.Raw, err)
		}
		if st.Ticket.Carrier != s.Serial {
			return fmt.Errorf("stored ticket %v is bound to card %v, not to this card %v", st.Ticket.ID, st.Ticket.Carrier, s.Serial)
		}
	}
	switch {
	case s.Free != s.Capacity-used || s.Free < 0:
		return fmt.Errorf("%d bytes free, want capacity %d - %d used", s.Free, s.Capacity, used)
	case s.Reclaimable != reclaimable:
		return fmt.Errorf("%d bytes reclaimable, want %d", s.Reclaimable, reclaimable)
	case len(s.Tickets) > s.MaxTickets:
		return fmt.Errorf("%d tickets, at most %d", len(s.Tickets), s.MaxTickets)
	}
	return nil
}

func insOf(cmd []byte) byte {
	if len(cmd) < 2 {
		return 0
	}
	return cmd[1]
}

// storageChanged reports a change of the tickets, their states or the
// certificate: what raises the storage-changed notification.
func storageChanged(a, b Snapshot) bool {
	if len(a.Tickets) != len(b.Tickets) || !bytes.Equal(a.Certificate, b.Certificate) || a.Counter != b.Counter {
		return true
	}
	for i := range a.Tickets {
		if !bytes.Equal(a.Tickets[i].Raw, b.Tickets[i].Raw) || a.Tickets[i].State != b.Tickets[i].State {
			return true
		}
	}
	return false
}

// sequenceSeed is a named input of FuzzSequence and the deep states it
// reaches.
type sequenceSeed struct {
	name    string
	in      []byte
	reaches []string
}

// seq assembles an input from operations and their operands.
func seq(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func op(code int, operands ...byte) []byte { return append([]byte{byte(code)}, operands...) }

func sequenceSeeds() []sequenceSeed {
	selectBoth := seq(op(opSelect, 0, 0), op(opSelect, 1, 0), op(opProfile, 2, 0xFF, 0xFF))
	sync := op(opBeginSync, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
	fill := seq(op(opStore, 0, 0), op(opStore, 1, 0), op(opStore, 2, 0), op(opStore, 3, 0), op(opStore, 4, 0))
	return []sequenceSeed{
		{"handset and gate", seq(selectBoth, sync, op(opCertificate, 0, 0), fill,
			op(opStatus, 0, 0), op(opList), op(opFind, 0, 7), op(opCheck, 0, 0, 0, 1), op(opCheck, 0, 0, 0, 2),
			op(opFetch), op(opTermResponse, 0, 0), op(opFetch), op(opTermResponse, 0, 0),
			sync, op(opDelete, 0, 1, 0), op(opStore, 5, 0), op(opList), op(opRead, 0)),
			[]string{"sync", "certified", "stored", "full", "checked", "fetched", "acknowledged", "deleted checked", "holds checked"}},
		{"refusals", seq(selectBoth, sync, op(opStore, 0, 1), op(opStore, 0, 2), op(opStore, 0, 3), op(opStore, 0, 4),
			op(opStore, 0, 5), op(opStore, 0, 0), op(opStore, 0, 0), op(opDelete, 3, 2, 0), op(opDelete, 0, 1, 0),
			op(opCertificate, 1, 0), op(opCheck, 0, 0, 2, 0), op(opTermResponse, 7, 0), op(opProfile, 33)),
			[]string{"stored"}},
		{"chains and extended", seq(selectBoth, sync, op(opStore, 0, 6), op(opStore, 1, 7), op(opGetResponse, 0, 4),
			op(opChannel, 0, 0), op(opSelect, 0, 3), op(opChannel, 0, 3), op(opRaw, 0, 5, 0x80, 0xF2, 0, 0, 0)),
			[]string{"stored"}},
		{"faults and tears", seq(selectBoth, sync, op(opStore, 0, 0), op(opWriteFault, 0), op(opStore, 1, 0),
			op(opTear, 0, 0), op(opStore, 1, 0), op(opSelect, 0, 0), op(opSelect, 1, 0), op(opTear, 1, 1), op(opCheck, 0, 0, 0, 0),
			op(opPowerCycle), op(opSelect, 0, 1), op(opTear, 2, 2), sync, op(opReset, 0), op(opList)),
			[]string{"stored", "write failed", "torn", "power cycle"}},
		{"the last epoch and counter", seq(selectBoth, op(opAge, 0), sync, sync, op(opAge, 1), op(opStore, 0, 0),
			op(opDelete, 1, 0, 0), op(opCertificate, 0, 0)),
			[]string{"sync"}},
		{"checked and certified", seq(selectBoth, sync, op(opCertificate, 0, 0), op(opStore, 0, 0), op(opStore, 1, 0),
			op(opCheck, 0, 1, 1, 9)),
			[]string{"certified", "stored", "checked", "holds checked"}},
		{"raw", seq(op(opRaw, 0, 4, 0x90, 0x38, 0, 0), op(opRaw, 1, 3, 0x80, 0x38, 0)), nil},
	}
}
