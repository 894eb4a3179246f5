package vpcd_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/pcscd"
)

// spaced writes bytes as pcsc-tools and opensc-tool do: "3B 88 81 ...".
func spaced(b []byte) string { return fmt.Sprintf("% X", b) }

// tool runs a PC/SC client program and returns its output. ATR_analysis
// (run by pcsc_scan) downloads the card list when it finds none in
// XDG_CACHE_HOME: it gets a copy of the installed one there.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	require.NoError(t, err, "%s is installed by scripts/deps.sh pcsc", name)
	cache := t.TempDir()
	list, err := os.ReadFile("/usr/share/pcsc/smartcard_list.txt")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(cache, "smartcard_list.txt"), list, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache, "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// TestRealClients: pcsc-tools and OpenSC's tools see the card and talk
// to it.
func TestRealClients(t *testing.T) {
	d := pcscd.Start(t)
	card, _ := newCard(t, cardtest.VectorFixture(t).Personalisation(), emulator.Options{})
	serve(t, d, 0, card)
	contactATR, contactlessATR := spaced(card.ATR(applet.Contact)), spaced(card.ATR(applet.Contactless))

	t.Run("pcsc_scan", func(t *testing.T) {
		out := tool(t, "pcsc_scan", "-r")
		assert.Contains(t, out, "0: Virtual PCD 00 00")
		assert.Contains(t, out, "1: Virtual PCD 00 01")
		out = tool(t, "pcsc_scan", "-c")
		assert.Contains(t, out, "Reader 0: Virtual PCD 00 00")
		assert.Contains(t, out, "ATR: "+contactATR)
		assert.Contains(t, out, "ATR: "+contactlessATR)
		// With the ATR's analysis: not taken for a known card.
		out = tool(t, "pcsc_scan", "-t", "1")
		assert.Contains(t, out, "ATR: "+contactATR)
		assert.Contains(t, out, "TCK = 15 (correct checksum)")
		assert.Contains(t, out, "Card issuer data: 53 49 4D 54 49 58")
		assert.Contains(t, out, "Your card is not present in the database.")
		assert.NotContains(t, out, "wget")
	})

	t.Run("opensc-tool", func(t *testing.T) {
		out := tool(t, "opensc-tool", "-l")
		assert.Regexp(t, `0\s+Yes\s+Virtual PCD 00 00`, out)
		assert.Regexp(t, `1\s+Yes\s+Virtual PCD 00 01`, out)
		out = tool(t, "opensc-tool", "-r", "0", "-s", selectSimtix, "-s", statusCmd, "-s", selectUnknown)
		sections := strings.Split(out, "Sending: ")
		require.Len(t, sections, 4, out)
		assert.Contains(t, sections[1], "Received (SW1=0x90, SW2=0x00):\n6F ", "SELECT answers the FCI")
		assert.Contains(t, sections[1], "SIMTIX")
		assert.Contains(t, sections[2], "Received (SW1=0x90, SW2=0x00):\nA5 ", "STATUS answers the status template")
		assert.Contains(t, sections[3], "Received (SW1=0x6A, SW2=0x82)")
		// The contactless reader, by name.
		out = tool(t, "opensc-tool", "-r", d.ContactlessReader(0), "-s", selectSimtix, "-s", statusCmd)
		assert.Contains(t, out, "Received (SW1=0x69, SW2=0x82)", "no STATUS contactless")
	})

	t.Run("scriptor", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "simtix.apdu")
		require.NoError(t, os.WriteFile(script, []byte(`# simtix: select the applet, read its status, select an absent one
reset
00 A4 04 00 08 F0 53 49 4D 54 49 58 01
80 F2 00 00 00
00 A4 04 00 07 A0 00 00 00 03 10 10
exit
`), 0o644))
		out := tool(t, "scriptor", "-r", d.ContactReader(0), "-p", "T=1", script)
		assert.Contains(t, out, "< OK: "+contactATR)
		assert.Regexp(t, `(?s)> 00 A4 04 00 08 F0 53 49 4D 54 49 58 01\s+< 6F .*90 00 : Normal processing\.`, out)
		assert.Regexp(t, `(?s)> 80 F2 00 00 00\s+< A5 .*90 00 : Normal processing\.`, out)
		assert.Contains(t, out, "< 6A 82 :")
	})
}
