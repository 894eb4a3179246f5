package e2e_test

import (
	"testing"
	"time"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/internal/systemtest"
)

// TestInProcess runs the scenario on an in-process card and a server on
// SQLite: fast, for every `go test`.
func TestInProcess(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	card := env.NewCard("89860012345678901234", 0)
	snap, err := card.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	scenario(t, rig{env: env, serial: snap.Serial, contact: card.Port(applet.Contact), contactless: card.Port(applet.Contactless),
		snapshot: card.Snapshot, interval: 10 * time.Millisecond})
}
