package storebench_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/postgres"
	"github.com/simtix/simtix/store/postgres/pgtest"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/store/storebench"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }

// n loads 3 whole cards and part of a fourth.
const n = 3*storebench.TicketsPerCard + 5

// TestLoadSQLite: what LoadSQLite writes, the SQLite store reads back as
// the tickets and cards Ticket describes.
func TestLoadSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "simtix.db")
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, storebench.LoadSQLite(ctx, path, n))
	checkLoaded(t, s)
}

// TestLoadPostgres: the same for LoadPostgres and the PostgreSQL store.
func TestLoadPostgres(t *testing.T) {
	ctx := context.Background()
	url := cluster.Schema(t)
	s, err := postgres.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, storebench.LoadPostgres(ctx, url, n))
	checkLoaded(t, s)
}

func checkLoaded(t *testing.T, s store.Store) {
	ctx := context.Background()
	require.NoError(t, s.View(ctx, func(tx store.Tx) error {
		counts, err := tx.CountTickets(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[box.State]int{box.InBox: 30, box.OnCard: 28, box.Checked: 7, box.Delivering: 0, box.Returning: 0}, counts)
		for k := range 4 {
			c, err := tx.Card(ctx, storebench.Serial(k))
			require.NoError(t, err)
			assert.True(t, c.Registered)
			assert.True(t, c.Certified)
			assert.Equal(t, storebench.Serial(k), c.Status.Serial)
			ts, err := tx.TicketsOf(ctx, storebench.Serial(k))
			require.NoError(t, err)
			want := min(storebench.TicketsPerCard, n-k*storebench.TicketsPerCard)
			require.Len(t, ts, want)
			for j, got := range ts {
				exp, err := storebench.Ticket(k*storebench.TicketsPerCard + j)
				require.NoError(t, err)
				exp.Seq = got.Seq
				assert.Equal(t, exp, got, "ticket %d of card %d", j, k)
			}
		}
		deny, err := tx.DenyList(ctx)
		require.NoError(t, err)
		assert.Len(t, deny, 7)
		return nil
	}))
}
