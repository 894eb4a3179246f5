package applet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/nvm"
	"github.com/simtix/simtix/ticketfmt"
)

func newCard(t *testing.T) (*Card, *nvm.RAM, cardkeys.Keys) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	master := make([]byte, 32)
	serial := ticketfmt.Serial{0x89, 0x86}
	ps, pages := MemoryLayout(DefaultCapacity, DefaultMaxTickets)
	ram := nvm.NewRAM(ps, pages)
	c, err := Personalise(ram, Personalisation{Serial: serial, Master: master, CardKey: key})
	require.NoError(t, err)
	keys, err := cardkeys.Derive(master, serial)
	require.NoError(t, err)
	return c, ram, keys
}

func send(t *testing.T, c *Card, i Interface, cmd apdu.Command) apdu.Response {
	t.Helper()
	b, err := cmd.Bytes()
	require.NoError(t, err)
	out, err := c.Process(i, b)
	require.NoError(t, err)
	r, err := apdu.ParseResponse(out)
	require.NoError(t, err)
	return r
}

func TestEpochNeverWraps(t *testing.T) {
	c, _, _ := newCard(t)
	send(t, c, Contact, cardproto.SelectNoFCI())
	next := c.s.clone()
	next.epoch = 0xFFFFFFFE
	require.NoError(t, c.commit(next))
	assert.Equal(t, apdu.SWSuccess, send(t, c, Contact, cardproto.BeginSync([16]byte{})).SW)
	before := c.Snapshot()
	assert.Equal(t, apdu.SWStaleAuthorization, send(t, c, Contact, cardproto.BeginSync([16]byte{})).SW)
	assert.Equal(t, before, c.Snapshot(), "BEGIN SYNC at epoch FFFFFFFF changes nothing")
	assert.Equal(t, uint32(0xFFFFFFFF), before.Epoch)
}

func TestCounterStopsAtMax(t *testing.T) {
	c, _, keys := newCard(t)
	send(t, c, Contact, cardproto.SelectNoFCI())
	next := c.s.clone()
	next.counter = 0xFFFFFFFF
	require.NoError(t, c.commit(next))
	a := cardkeys.Authorisation{Epoch: 0, Counter: 0xFFFFFFFF}
	cmd := cardproto.PutCertificate([]byte{0xE5, 0x02, 0x88, 0x00}, a, cardkeys.CertMAC(keys, c.p.serial, a, []byte{0xE5, 0x02, 0x88, 0x00}))
	assert.Equal(t, apdu.SWStaleAuthorization, send(t, c, Contact, cmd).SW)
}

func TestLoadRefusesDamagedRecord(t *testing.T) {
	c, ram, keys := newCard(t)
	send(t, c, Contact, cardproto.SelectNoFCI())
	issuer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tk := ticketfmt.Ticket{Seller: "Damage Test Seller", Date: ticketfmt.Date{Year: 2026, Month: 1, Day: 1}, Carrier: c.p.serial}
	require.NoError(t, tk.Sign(issuer))
	raw, err := tk.Marshal()
	require.NoError(t, err)
	a := cardkeys.Authorisation{}
	require.Equal(t, apdu.SWSuccess, send(t, c, Contact, cardproto.Store(raw, a, cardkeys.StoreMAC(keys, c.p.serial, a, raw))).SW)

	_, err = Load(ram)
	require.NoError(t, err)
	mem := ram.Bytes()
	i := indexOf(mem, []byte("Damage Test Seller"))
	require.Positive(t, i, "the ticket is in memory as stored")
	mem[i] ^= 0x20
	_, err = Load(ram)
	assert.ErrorIs(t, err, ErrCorrupt)

	_, err = Load(nvm.NewRAM(64, 10))
	assert.ErrorIs(t, err, ErrCorrupt, "an unformatted memory")
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

func TestT0Mode(t *testing.T) {
	c, _, _ := newCard(t)
	c.SetT0(true)
	// Extended APDUs are refused.
	r := send(t, c, Contact, apdu.Command{CLA: 0x80, INS: 0xF2, Ne: 65536, Extended: true})
	assert.Equal(t, apdu.SWWrongLength, r.SW)
	// A command with data that returns data answers 61xx with no data.
	r = send(t, c, Contact, cardproto.Select())
	assert.Empty(t, r.Data)
	n, ok := r.SW.MoreData()
	require.True(t, ok, "%v", r.SW)
	r = send(t, c, Contact, cardproto.GetResponse(n))
	require.Equal(t, apdu.SWSuccess, r.SW)
	_, err := cardproto.ParseFCI(r.Data)
	require.NoError(t, err)
	// Without data, the answer comes at once.
	r = send(t, c, Contact, cardproto.Status())
	assert.Equal(t, apdu.SWSuccess, r.SW)
	assert.Len(t, r.Data, 54)
	// P2 0C: no data to return, so 9000.
	assert.Equal(t, apdu.SWSuccess, send(t, c, Contact, cardproto.SelectNoFCI()).SW)
	// The contactless interface is never T=0.
	r = send(t, c, Contactless, cardproto.Select())
	assert.Equal(t, apdu.SWSuccess, r.SW)
	assert.NotEmpty(t, r.Data)
}

func TestStatusTemplateLayout(t *testing.T) {
	c, _, _ := newCard(t)
	got := hex.EncodeToString(c.statusTemplate())
	// A5 34 80 02 0800 81 02 0800 82 02 0000 83 01 20 84 01 00 85 01 00
	// 86 01 08 87 04 00000000 88 0A serial 89 02 0100 8A 04 00000000
	want := "a534" + "80020800" + "81020800" + "82020000" + "830120" + "840100" + "850100" + "860108" +
		"870400000000" + "880a" + hex.EncodeToString(c.p.serial[:]) + "89020100" + "8a0400000000"
	assert.Equal(t, want, got)
}
