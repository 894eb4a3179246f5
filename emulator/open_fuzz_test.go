package emulator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/imagefile"
	"github.com/simtix/simtix/ticketfmt"
)

// FuzzOpen opens damaged card image files whole, through emulator.Open, as
// `simtix card apdu` and the roles do: the file format (imagefile), the
// memory's page table (nvm) and the applet's image (applet.Load) one behind
// the other. A damaged image is refused with an error that names the file,
// is left as it was, and stays openable (no lock left behind); an image
// that opens is a card that keeps the storage invariants, answers what
// the handset and the gates send first, and saves and opens again as it
// was.
//
// Input: which seed file (a new card, a card holding tickets), fix (bit 0:
// recompute the CRC-32C of nvm's two meta pages after the edits; bit 1:
// recompute the file's SHA-256, so that the edits reach the checks behind
// each checksum; bit 2: cut the file at the first edit's offset) and edits,
// 3 bytes each: an offset (2 bytes, modulo the file's length) and the byte
// to write there. Small inputs over valid files reach deeper, and minimise
// faster, than whole files would; internal/imagefile's FuzzDecode takes
// whole files.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	seeds := openSeeds(f, dir)
	for i := range seeds {
		for _, fix := range []byte{0, 1, 2, 3} {
			f.Add(byte(i), fix, []byte{})
			f.Add(byte(i), fix, []byte{0x01, 0x00, 0x00})
		}
	}
	f.Fuzz(func(t *testing.T, which, fix byte, edits []byte) {
		data := bytes.Clone(seeds[int(which)%len(seeds)])
		for i := 0; i+3 <= len(edits); i += 3 {
			data[int(binary.BigEndian.Uint16(edits[i:]))%len(data)] = edits[i+2]
		}
		if fix&4 != 0 && len(edits) >= 2 {
			data = data[:int(binary.BigEndian.Uint16(edits))%len(data)]
		}
		if fix&1 != 0 {
			fixMetaCRCs(data)
		}
		if fix&2 != 0 && len(data) >= sha256.Size {
			sum := sha256.Sum256(data[:len(data)-sha256.Size])
			copy(data[len(data)-sha256.Size:], sum[:])
		}
		path := filepath.Join(dir, "fuzz.img")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		defer os.Remove(path)

		c, err := emulator.Open(path, emulator.Options{NoSync: true})
		if err != nil {
			refused(t, path, data, err)
			return
		}
		defer c.Close()
		openedCardWorks(t, c, path)
	})
}

// refused checks a refusal: a clear error naming the file, the file as it
// was, and no lock left behind (opening again gives the same refusal).
func refused(t *testing.T, path string, data []byte, err error) {
	known := []error{imagefile.ErrCorrupt, imagefile.ErrNotImage, imagefile.ErrVersion, applet.ErrCorrupt}
	matched := false
	for _, k := range known {
		matched = matched || errors.Is(err, k)
	}
	require.True(t, matched, "a refusal says why: %v", err)
	require.Contains(t, err.Error(), path, "the error names the image")
	after, rerr := os.ReadFile(path)
	require.NoError(t, rerr)
	require.Equal(t, data, after, "a refused image is left as it was")
	_, again := emulator.Open(path, emulator.Options{NoSync: true})
	require.Error(t, again)
	require.NotErrorIs(t, again, imagefile.ErrLocked, "a refused image is not left locked")
	require.Equal(t, err.Error(), again.Error())
}

// openedCardWorks checks an image that opened: the storage invariants,
// the first commands of a handset and a gate, and a save that opens again
// to the same card.
func openedCardWorks(t *testing.T, c *emulator.Card, path string) {
	ctx := context.Background()
	snap, err := c.Snapshot()
	require.NoError(t, err)
	storageInvariants(t, snap)
	send := func(i applet.Interface, cmd apdu.Command) []byte {
		b, err := cmd.Bytes()
		require.NoError(t, err)
		out, err := c.Transmit(ctx, i, b)
		require.NoError(t, err)
		resp, err := apdu.ParseResponse(out)
		require.NoError(t, err)
		require.True(t, resp.SW.OK(), "%v answered %v", cmd, resp.SW)
		return resp.Data
	}
	for _, i := range []applet.Interface{emulator.Contact, emulator.Contactless} {
		_, err := c.PowerOn(ctx, i)
		require.NoError(t, err)
	}
	fci, err := cardproto.ParseFCI(send(emulator.Contact, cardproto.Select()))
	require.NoError(t, err, "the handset reads SELECT's answer")
	require.NotNil(t, fci.Status)
	require.Equal(t, snap.Free, fci.Status.Free)
	list := send(emulator.Contact, cardproto.List())
	entries, err := cardproto.ParseList(list)
	require.NoError(t, err, "the box reads LIST's answer")
	require.Len(t, entries, len(snap.Tickets))
	if snap.Epoch < 0xFFFFFFFF {
		ans, err := cardproto.ParseSync(send(emulator.Contact, cardproto.BeginSync([16]byte{7})))
		require.NoError(t, err, "the box reads BEGIN SYNC's answer")
		require.NoError(t, ans.CheckInventory(list))
		require.Equal(t, snap.Epoch+1, ans.Status.Epoch)
	}
	fci, err = cardproto.ParseFCI(send(emulator.Contactless, cardproto.Select()))
	require.NoError(t, err, "a gate reads SELECT's answer")
	require.Equal(t, snap.Certificate, fci.Certificate)

	want, err := c.Snapshot()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	again, err := emulator.Open(path, emulator.Options{NoSync: true})
	require.NoError(t, err, "a card that opened saves an image that opens")
	defer again.Close()
	got, err := again.Snapshot()
	require.NoError(t, err)
	require.Equal(t, want, got, "and holds the same card")
}

// storageInvariants checks what every card keeps: free bytes exact,
// reclaimable bytes those of the checked tickets, the ticket count within
// the maximum, no ID twice, every ticket canonical and bound to the card.
func storageInvariants(t *testing.T, s applet.Snapshot) {
	used, reclaimable := 0, 0
	ids := map[ticketfmt.ID]bool{}
	for _, st := range s.Tickets {
		used += st.Size()
		require.False(t, ids[st.Ticket.ID], "ticket %v stored twice", st.Ticket.ID)
		ids[st.Ticket.ID] = true
		if st.State == cardproto.StateChecked {
			reclaimable += st.Size()
			require.NotNil(t, st.Check, "checked ticket %v has a valid check record", st.Ticket.ID)
		} else {
			require.Equal(t, cardproto.StateUnchecked, st.State)
		}
		again, err := st.Ticket.Marshal()
		require.NoError(t, err)
		require.Equal(t, st.Raw, again, "stored tickets are canonical")
		require.Equal(t, s.Serial, st.Ticket.Carrier, "stored tickets are bound to the card")
	}
	require.Equal(t, s.Capacity-used, s.Free, "free bytes are exact")
	require.Equal(t, reclaimable, s.Reclaimable)
	require.LessOrEqual(t, len(s.Tickets), s.MaxTickets)
}

// openSeeds makes image files of the card of vectors.json: new, and holding
// tickets (one checked) and its certificate.
func openSeeds(f testing.TB, dir string) [][]byte {
	fx := cardtest.VectorFixture(f)
	path := filepath.Join(dir, "seed.img")
	require.NoError(f, emulator.Create(path, fx.Personalisation()))
	fresh, err := os.ReadFile(path)
	require.NoError(f, err)

	c, err := emulator.Open(path, emulator.Options{NoSync: true})
	require.NoError(f, err)
	for _, i := range []applet.Interface{emulator.Contact, emulator.Contactless} {
		_, err := c.PowerOn(context.Background(), i)
		require.NoError(f, err)
	}
	h := cardtest.NewHarness(f, func(testing.TB, cardtest.Fixture) cardtest.Target { return portTarget{c} }, fx)
	h.Select(emulator.Contact)
	h.Select(emulator.Contactless)
	h.Sync()
	a := h.Auth()
	cert := h.V.CardCertificateE5
	h.OK(emulator.Contact, cardproto.PutCertificate(cert, a, cardkeys.CertMAC(fx.Keys, fx.Serial, a, cert)))
	first := h.Issue(0)
	require.True(f, h.Store(first).SW.OK())
	require.True(f, h.Store(h.Issue(1)).SW.OK())
	when := ticketfmt.DateTime{Date: ticketfmt.Date{Year: 2026, Month: 12, Day: 5}, Hour: 19}
	h.OK(emulator.Contactless, cardproto.Check(cardtest.ID(f, first), [4]byte{'G', 'A', 'T', 'E'}, when, [16]byte{1}))
	require.NoError(f, c.Close())
	full, err := os.ReadFile(path)
	require.NoError(f, err)
	require.NoError(f, os.Remove(path))
	return [][]byte{fresh, full}
}

// fixMetaCRCs recomputes the CRC-32C of nvm's two meta pages in an image
// file, as far as the file's header and the pages' own lengths lead (the
// layouts of imagefile's format.go and nvm's store.go).
func fixMetaCRCs(data []byte) {
	const header = 22
	if len(data) < header {
		return
	}
	ps := int(binary.BigEndian.Uint32(data[12:]))
	memLen := int(binary.BigEndian.Uint32(data[16:]))
	start := header + int(binary.BigEndian.Uint16(data[20:]))
	if ps < 16 || start+memLen > len(data) {
		return
	}
	mem := data[start : start+memLen]
	table := crc32.MakeTable(crc32.Castagnoli)
	for m := range 2 {
		if (m+1)*ps > len(mem) {
			return
		}
		page := mem[m*ps : (m+1)*ps]
		es, l := int(page[3]), int(binary.BigEndian.Uint16(page[12:]))
		if page[0] != 'N' || page[1] != 'V' || (es != 1 && es != 2) || 14+l*es+4 > ps {
			continue
		}
		end := 14 + l*es
		binary.BigEndian.PutUint32(page[end:], crc32.Checksum(page[:end], table))
	}
}

// TestOpenSeedsOpen checks FuzzOpen's harness on its seeds: as made they
// open and work, and with a byte changed they are refused.
func TestOpenSeedsOpen(t *testing.T) {
	dir := t.TempDir()
	seeds := openSeeds(t, dir)
	require.Len(t, seeds, 2)
	path := filepath.Join(dir, "x.img")
	for _, s := range seeds {
		require.NoError(t, os.WriteFile(path, s, 0o600))
		c, err := emulator.Open(path, emulator.Options{NoSync: true})
		require.NoError(t, err)
		openedCardWorks(t, c, path)

		damaged := bytes.Clone(s)
		damaged[len(damaged)/2] ^= 0x40
		require.NoError(t, os.WriteFile(path, damaged, 0o600))
		_, err = emulator.Open(path, emulator.Options{NoSync: true})
		require.ErrorIs(t, err, imagefile.ErrCorrupt)
		refused(t, path, damaged, err)
		require.NoError(t, os.Remove(path))
	}
}
