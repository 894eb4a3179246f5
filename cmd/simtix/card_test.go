package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/ticketfmt"
)

// newCardImage personalises the card of vectors.json through the command
// line and returns its image path.
func newCardImage(t *testing.T, extra ...string) string {
	v, err := testvectors.Load()
	require.NoError(t, err)
	dir := t.TempDir()
	key := filepath.Join(dir, "master.key")
	require.NoError(t, os.WriteFile(key, []byte(hex.EncodeToString(v.MasterSecret)+"\n"), 0o600))
	image := filepath.Join(dir, "card.img")
	args := append([]string{"card", "new", "--image", image, "--serial", "8986 0012 3456 7890 1234", "--master-key", key}, extra...)
	code, out, errOut := simtix(t, args...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "89860012345678901234")
	return image
}

func hexOf(t *testing.T, cmds ...interface{ Bytes() ([]byte, error) }) []string {
	var out []string
	for _, c := range cmds {
		b, err := c.Bytes()
		require.NoError(t, err)
		out = append(out, hex.EncodeToString(b))
	}
	return out
}

func TestCardNewRefusesOverwrite(t *testing.T) {
	image := newCardImage(t)
	before, err := os.ReadFile(image)
	require.NoError(t, err)
	key := filepath.Join(filepath.Dir(image), "master.key")
	code, _, errOut := simtix(t, "card", "new", "--image", image, "--serial", "89860012345678901234", "--master-key", key)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "exists")
	after, err := os.ReadFile(image)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the existing image is untouched")

	for _, args := range [][]string{
		{"card", "new", "--image", image + "2", "--serial", "8986", "--master-key", key},
		{"card", "new", "--image", image + "2", "--serial", "89860012345678901234", "--master-key", key, "--capacity", "100"},
		{"card", "new", "--image", image + "2", "--serial", "89860012345678901234"},
	} {
		code, _, errOut := simtix(t, args...)
		assert.Equal(t, exitUsage, code, "%v: %s", args, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte("not hex"), 0o600))
	code, _, errOut = simtix(t, "card", "new", "--image", image+"3", "--serial", "89860012345678901234", "--master-key", bad)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "64 hex digits")
}

func TestCardAPDU(t *testing.T) {
	image := newCardImage(t)
	v, err := testvectors.Load()
	require.NoError(t, err)
	var ch [16]byte
	copy(ch[:], v.SyncChallenge)
	args := append([]string{"card", "apdu", "--image", image},
		hexOf(t, cardproto.Select(), cardproto.BeginSync(ch))...)
	args = append(args, "80 F2 00 00 00", "00A40400")
	code, out, errOut := simtix(t, args...)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4)
	assert.True(t, strings.HasPrefix(lines[0], "6F"), lines[0])
	assert.True(t, strings.HasSuffix(lines[0], "9000"))
	// The card key is the card's own, made by card new: the answer is the
	// vectors' up to the key, and its MAC verifies with the vectors' K_auth.
	prefix := strings.ToUpper(hex.EncodeToString(v.SyncE4[:v.SyncE4[4]+5]))
	assert.True(t, strings.HasPrefix(lines[1], prefix), "status template of vectors.json: %s", lines[1])
	e4, err := hex.DecodeString(strings.TrimSuffix(lines[1], "9000"))
	require.NoError(t, err)
	answer, err := cardproto.ParseSync(e4)
	require.NoError(t, err)
	var serial ticketfmt.Serial
	copy(serial[:], v.Serial)
	keys, err := cardkeys.Derive(v.MasterSecret, serial)
	require.NoError(t, err)
	require.NoError(t, answer.Verify(keys, ch[:]))
	assert.Equal(t, "6700", lines[3], "an error status word is printed, exit 0")

	// The card was saved: the STORE MAC of vectors.json (epoch 1, counter 0)
	// works in a second run, on a fresh power-on.
	code, out, errOut = simtix(t, append([]string{"card", "apdu", "--image", image},
		hexOf(t, cardproto.SelectNoFCI(), cardproto.Store(v.TicketE1, cardkeys.Authorisation{Epoch: 1}, v.StoreMAC))...)...)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "9000\n9000\n", out)

	// Contactless: STATUS is not allowed there.
	code, out, _ = simtix(t, "card", "apdu", "--image", image, "--interface", "contactless", "80F2000000")
	require.Equal(t, 0, code)
	assert.Equal(t, "6982\n", out)

	// Not hex: exit 2, nothing sent.
	code, out, errOut = simtix(t, "card", "apdu", "--image", image, "80F2000000", "xyz")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "not hex")
	code, _, _ = simtix(t, "card", "apdu", "--image", image, "--interface", "nfc", "80F2000000")
	assert.Equal(t, exitUsage, code)

	// card show.
	code, out, errOut = simtix(t, "card", "show", "--image", image)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "used 183")
	assert.Contains(t, out, "544b5400000000000001")
	assert.Contains(t, out, "国家大剧院")
	assert.Contains(t, out, "bytes: the room a ticket takes in the ticket file, its encoding plus 8 bytes of record overhead")
	code, out, errOut = simtix(t, "card", "show", "--image", image, "--json")
	require.Equal(t, 0, code, errOut)
	var doc cardJSON
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	assert.Equal(t, 2048-183, doc.Free)
	require.Len(t, doc.Tickets, 1)
	assert.Equal(t, len(v.TicketE1), doc.Tickets[0].Size, "size: the encoded ticket, as in order and tickets --json")
	assert.Equal(t, len(v.TicketE1)+doc.Overhead, doc.Tickets[0].StoredBytes, "stored_bytes: its room on the card")
	assert.Equal(t, 183, doc.Tickets[0].StoredBytes)
	assert.Contains(t, out, `"stored_bytes": 183`)
	assert.Equal(t, "unchecked", doc.Tickets[0].State)
	assert.Equal(t, uint32(1), doc.Epoch)
}

func TestCardAPDUFaults(t *testing.T) {
	image := newCardImage(t)
	v, err := testvectors.Load()
	require.NoError(t, err)
	var ch [16]byte
	copy(ch[:], v.SyncChallenge)
	sel := hexOf(t, cardproto.SelectNoFCI())[0]
	sync := hexOf(t, cardproto.BeginSync(ch))[0]

	// write:1: the first write of BEGIN SYNC fails: 6400, nothing changed.
	code, out, errOut := simtix(t, "card", "apdu", "--image", image, "--fault", "write:1", sel, sync, "80F2000000")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, "6400", lines[1])
	assert.True(t, strings.HasSuffix(lines[2], "8A04000000009000"), "epoch still 0: %s", lines[2])

	// tear:1: no line for the torn APDU or after, a message, exit 3.
	code, out, errOut = simtix(t, "card", "apdu", "--image", image, "--fault", "tear:1", sel, sync, "80F2000000")
	assert.Equal(t, exitTorn, code)
	assert.Equal(t, "9000\n", out)
	assert.Contains(t, errOut, "APDU 2 of 3")
	// The card comes back with BEGIN SYNC not applied.
	code, out, _ = simtix(t, "card", "apdu", "--image", image, sel, "80F2000000")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasSuffix(strings.TrimSpace(out), "8A04000000009000"), out)

	for _, bad := range []string{"write", "tear:0", "melt:1"} {
		code, _, _ := simtix(t, "card", "apdu", "--image", image, "--fault", bad, sel)
		assert.Equal(t, exitUsage, code, bad)
	}
}

func TestCardShowRefusesDamagedImage(t *testing.T) {
	image := newCardImage(t)
	b, err := os.ReadFile(image)
	require.NoError(t, err)
	b[100] ^= 0xFF
	require.NoError(t, os.WriteFile(image, b, 0o600))
	code, _, errOut := simtix(t, "card", "show", "--image", image)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "damaged")
	code, _, errOut = simtix(t, "card", "apdu", "--image", image, "80F2000000")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "damaged")
}

// TestCardImageInUse holds a card image open as card serve does: card show
// and card apdu refuse it with a clear error, exit 1, and leave it as it
// was; once it is closed they work.
func TestCardImageInUse(t *testing.T) {
	image := newCardImage(t)
	before, err := os.ReadFile(image)
	require.NoError(t, err)
	held, err := emulator.Open(image, emulator.Options{})
	require.NoError(t, err)
	for _, args := range [][]string{
		{"card", "show", "--image", image},
		{"card", "show", "--image", image, "--json"},
		{"card", "apdu", "--image", image, "80F2000000"},
	} {
		code, out, errOut := simtix(t, args...)
		assert.Equal(t, exitError, code, "%q: %s", args, errOut)
		assert.Empty(t, out, "%q", args)
		assert.Contains(t, errOut, "simtix: card image "+image+": in use", "%q", args)
		assert.Contains(t, errOut, "another program (card serve, card apdu, sync or gate) has this card open", "%q", args)
	}
	require.NoError(t, held.Close())
	after, err := os.ReadFile(image)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	code, out, errOut := simtix(t, "card", "show", "--image", image)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "89860012345678901234")
	_, err = os.Stat(image + ".lock")
	assert.ErrorIs(t, err, os.ErrNotExist, "card show lets go of the lock")
}
