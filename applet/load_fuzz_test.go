package applet

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/nvm"
)

// FuzzLoad gives the card's loader damaged logical images (what nvm keeps
// under its page table): the loader refuses each with ErrCorrupt and no
// card, or loads a card that keeps every storage invariant, encodes back to
// an image that loads to the same card, and works: it answers SELECT,
// STATUS, LIST, READ, BEGIN SYNC and FIND in forms the handset, the box and
// the gates can read.
//
// Input: which image (those of sequenceSeeds' cards), fix (bit 0:
// recompute the CRC-32C of every record after the edits, so that they reach
// the checks behind a ticket's checksum) and edits, 3 bytes each: an
// offset (2 bytes, modulo the image's length) and the byte to write there.
// Small inputs over valid images reach deeper, and minimise faster, than
// whole images would.
func FuzzLoad(f *testing.F) {
	fx := newSequenceFixture(f)
	var images [][]byte
	for _, s := range sequenceSeeds() {
		r := fx.run(f, s.in)
		images = append(images, encode(r.c.p, r.c.s))
	}
	for i := range images {
		f.Add(byte(i), byte(0), []byte{})
		f.Add(byte(i), byte(1), []byte{0x03, 0x00, 0x01})
	}
	f.Fuzz(func(t *testing.T, which, fix byte, edits []byte) {
		img := bytes.Clone(images[int(which)%len(images)])
		for i := 0; i+3 <= len(edits); i += 3 {
			img[int(binary.BigEndian.Uint16(edits[i:]))%len(img)] = edits[i+2]
		}
		if fix&1 != 0 {
			fixRecordCRCs(img)
		}
		p, s, err := decode(img)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			require.Nil(t, p, "no half-loaded card")
			require.Nil(t, s, "no half-loaded card")
			return
		}
		again := encode(p, s)
		p2, s2, err := decode(again)
		require.NoError(t, err, "a loaded card encodes to an image that loads")
		require.Equal(t, again, encode(p2, s2), "and to the same card")

		// Through the memory, as a card powers on.
		ps, pages := nvm.Layout(len(img))
		ram := nvm.NewRAM(ps, pages)
		_, err = nvm.Format(ram, img)
		require.NoError(t, err)
		c, err := Load(ram)
		require.NoError(t, err)
		require.Equal(t, again, encode(c.p, c.s))
		snap := c.Snapshot()
		if err := invariants(snap); err != nil {
			t.Fatalf("the loader accepted a card that breaks an invariant: %v", err)
		}
		loadedCardWorks(t, c, snap)
	})
}

// loadedCardWorks sends a loaded card what the handset and a gate send
// first, and checks that they can read every answer.
func loadedCardWorks(t *testing.T, c *Card, snap Snapshot) {
	send := func(i Interface, cmd apdu.Command) []byte {
		out, err := c.Process(i, encodeCmd(t, cmd))
		require.NoError(t, err)
		resp, err := apdu.ParseResponse(out)
		require.NoError(t, err)
		require.True(t, resp.SW.OK(), "%v answered %v", cmd, resp.SW)
		return resp.Data
	}
	fci, err := cardproto.ParseFCI(send(Contact, cardproto.Select()))
	require.NoError(t, err, "the handset reads SELECT's answer")
	require.NotNil(t, fci.Status)
	st, err := cardproto.ParseStatus(send(Contact, cardproto.Status()))
	require.NoError(t, err, "the handset reads STATUS's answer")
	require.Equal(t, snap.Free, st.Free)
	list := send(Contact, cardproto.List())
	entries, err := cardproto.ParseList(list)
	require.NoError(t, err, "the box reads LIST's answer")
	require.Len(t, entries, len(snap.Tickets))
	for _, tk := range snap.Tickets {
		_, err := cardproto.ParseTicketState(send(Contact, cardproto.Read(tk.Ticket.ID)))
		require.NoError(t, err, "the handset reads READ's answer")
	}
	if snap.Epoch < 0xFFFFFFFF {
		ans, err := cardproto.ParseSync(send(Contact, cardproto.BeginSync([16]byte{1})))
		require.NoError(t, err, "the box reads BEGIN SYNC's answer")
		require.NoError(t, ans.Verify(c.p.keys, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
		require.NoError(t, ans.CheckInventory(list))
	}
	fci, err = cardproto.ParseFCI(send(Contactless, cardproto.Select()))
	require.NoError(t, err, "a gate reads SELECT's answer")
	require.Equal(t, snap.Certificate, fci.Certificate)
	for _, tk := range snap.Tickets {
		out, err := c.Process(Contactless, encodeCmd(t, cardproto.Find(cardproto.Query{Date: tk.Ticket.Date})))
		require.NoError(t, err)
		resp, err := apdu.ParseResponse(out)
		require.NoError(t, err)
		if resp.SW == apdu.SWSuccess {
			_, err := cardproto.ParseTicketState(resp.Data)
			require.NoError(t, err, "a gate reads FIND's answer")
		}
	}
}

// fixRecordCRCs recomputes the CRC-32C of every record of img's ticket
// file, as far as the records' lengths lead.
func fixRecordCRCs(img []byte) {
	if len(img) < offChecks {
		return
	}
	capacity, maxTickets := int(binary.BigEndian.Uint16(img[offCapacity:])), int(img[offMax])
	if len(img) != ImageSize(capacity, maxTickets) {
		return
	}
	file := offChecks + maxTickets*checkEntry
	for off, end := file, file+capacity; off+RecordOverhead <= end; {
		n := int(binary.BigEndian.Uint16(img[off:]))
		if n == 0 || off+RecordOverhead+n > end {
			return
		}
		binary.BigEndian.PutUint32(img[off+4:], crc32.Checksum(img[off+RecordOverhead:off+RecordOverhead+n], castagnoli))
		off += RecordOverhead + n
	}
}

// TestLoadRefusesWhatTheCardNeverWrites: an image whose checksums hold but
// whose contents the card could never have written (a ticket bound to
// another card, a check time that does not exist, a certificate for
// another card) is refused, not loaded.
func TestLoadRefusesWhatTheCardNeverWrites(t *testing.T) {
	fx := newSequenceFixture(t)
	var good []byte
	for _, s := range sequenceSeeds() {
		if s.name == "checked and certified" {
			r := fx.run(t, s.in)
			good = encode(r.c.p, r.c.s)
		}
	}
	require.NotNil(t, good)
	_, s, err := decode(good)
	require.NoError(t, err)
	require.NotEmpty(t, s.cert)
	slot := -1
	for _, r := range s.records {
		if r.state == cardproto.StateChecked {
			slot = int(r.slot)
		}
	}
	require.GreaterOrEqual(t, slot, 0, "the seed holds a checked ticket")

	for _, tc := range []struct {
		name   string
		damage func(img []byte)
		msg    string
	}{
		{"serial", func(img []byte) {
			img[offSerial+9] ^= 1
			binary.BigEndian.PutUint16(img[offCertLen:], 0) // the certificate names the serial too
		}, "bound to card"},
		{"check time", func(img []byte) { img[offChecks+slot*checkEntry+4+2] = 0x13 }, "check time"},
		{"certificate", func(img []byte) { img[offCert+10] ^= 1 }, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := append([]byte(nil), good...)
			tc.damage(img)
			p, s, err := decode(img)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.msg)
			require.Nil(t, p)
			require.Nil(t, s)
		})
	}
}
