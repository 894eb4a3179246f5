package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/internal/systemtest"
)

// TestInProcess runs the scenario on an in-process card, reached through
// its emulator ports, with the server on SQLite and on PostgreSQL.
func TestInProcess(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			env := systemtest.New(t, db.options(t))
			r, _ := inProcessRig(t, env, "89860012345678901234")
			scenario(t, r)
		})
	}
}

// inProcessRig makes a new in-process card of env (both interfaces
// powered) and reaches it through its ports: each presentation to a gate
// powers the contactless interface on (a reset, as a card arriving in the
// field) and takes the card away by powering it off.
func inProcessRig(tb testing.TB, env *systemtest.Env, serial string) (rig, *emulator.Card) {
	tb.Helper()
	card := env.NewCard(serial, 0)
	snap, err := card.Snapshot()
	require.NoError(tb, err)
	cl := card.Port(applet.Contactless)
	return rig{
		env:     env,
		serial:  snap.Serial,
		contact: card.Port(applet.Contact),
		present: func(ctx context.Context) (hostlib.Transport, func() error, error) {
			if _, err := cl.PowerOn(ctx); err != nil {
				return nil, nil, err
			}
			return cl, func() error { return cl.PowerOff(context.Background()) }, nil
		},
		snapshot: card.Snapshot,
		interval: 10 * time.Millisecond,
	}, card
}
