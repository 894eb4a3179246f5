package ticketfmt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/ticketfmt"
)

// specSize is the size rule of ticket-format.md's size budget.
func specSize(tk *ticketfmt.Ticket) int {
	c := 115
	for _, s := range []string{tk.Seller, tk.Seat, tk.Instructions} {
		if n := len(s); n > 0 {
			c += n + 2
			if n >= 128 {
				c++
			}
		}
	}
	switch {
	case c <= 127:
		return c + 2
	case c <= 255:
		return c + 3
	}
	return c + 4
}

func TestCorpusSizes(t *testing.T) {
	v, err := testvectors.Load()
	require.NoError(t, err)
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.IssuerPrivateScalar)
	require.NoError(t, err)
	ts, err := corpus.Tickets()
	require.NoError(t, err)
	require.NotEmpty(t, ts)
	lo, hi, sum := 1<<30, 0, 0
	for i := range ts {
		tk := &ts[i]
		tk.ID[9] = byte(i)
		require.NoError(t, tk.Sign(k))
		enc, err := tk.Marshal()
		require.NoError(t, err, "corpus ticket %d", i)
		require.Equal(t, specSize(tk), len(enc), "corpus ticket %d", i)
		back, err := ticketfmt.Unmarshal(enc)
		require.NoError(t, err)
		assert.Equal(t, tk, back)
		lo, hi, sum = min(lo, len(enc)), max(hi, len(enc)), sum+len(enc)
	}
	// ticket-format.md: "131-204 bytes, 170 on average".
	assert.Equal(t, 131, lo)
	assert.Equal(t, 204, hi)
	assert.InDelta(t, 170, float64(sum)/float64(len(ts)), 1)
}
