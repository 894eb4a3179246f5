package vpcd_test

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/internal/pcscd"
)

// buildSimtix builds the simtix command into a temporary directory.
func buildSimtix(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "simtix")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/simtix")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/simtix:\n%s", out)
	return bin
}

// TestCardServeCommand runs `simtix card serve` as a program: it serves the
// card through pcscd, a second serve of the same image is refused, and
// SIGTERM stops it with exit status 0 and the card saved.
func TestCardServeCommand(t *testing.T) {
	bin := buildSimtix(t)
	if out, _ := exec.Command(bin, "card", "serve", "--help").CombinedOutput(); !strings.Contains(string(out), "simtix card serve --image") {
		t.Fatalf("simtix has no card serve command: newCardServeCmd() (cmd/simtix/card_serve.go) must be added in newCardCmd() (cmd/simtix/card.go); card serve --help says:\n%s", out)
	}
	d := pcscd.Start(t)
	f := cardtest.VectorFixture(t)
	image := filepath.Join(t.TempDir(), "card.img")
	require.NoError(t, emulator.Create(image, f.Personalisation()))

	cmd := exec.Command(bin, "card", "serve", "--image", image)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "card serve's first line; stderr:\n%s", stderr.String())
	assert.Contains(t, line, f.Serial.String())
	assert.Contains(t, line, `127.0.0.1:35963 (reader "Virtual PCD 00 00")`)
	assert.Contains(t, line, `127.0.0.1:35964 (reader "Virtual PCD 00 01")`)
	assert.Contains(t, line, "SIGTERM")
	waitCard(t, d.ContactReader(0), true)
	waitCard(t, d.ContactlessReader(0), true)

	// The image is in use: a second serve gets a clear error.
	out, err := exec.Command(bin, "card", "serve", "--image", image, "--vpcd", "127.0.0.1:1", "--contactless-vpcd", "127.0.0.1:2").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "in use")
	assert.Contains(t, string(out), "second card serve")

	// Through PC/SC: a sync and a stored ticket (both write the card).
	h, _ := harness(t, d, 0, f)
	h.Select(applet.Contact)
	h.Sync()
	require.Equal(t, apdu.SWSuccess, h.Store(h.Issue(0)).SW)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "exit status after SIGTERM; stderr:\n%s", stderr.String())
	case <-time.After(testWait):
		t.Fatalf("card serve did not stop on SIGTERM; stderr:\n%s", stderr.String())
	}
	waitCard(t, d.ContactReader(0), false)

	snap, err := emulator.ReadSnapshot(image)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), snap.Epoch, "the sync is saved")
	assert.Len(t, snap.Tickets, 1, "the ticket is saved")
	// The image is free again.
	again, err := emulator.Open(image, emulator.Options{})
	require.NoError(t, err)
	require.NoError(t, again.Close())
}
