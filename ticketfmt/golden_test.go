package ticketfmt

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from the code (review the diff!)")

// goldenCase is one signed ticket of testdata/golden.json: its fields, and
// the exact bytes they encode to when signed by the vectors' issuer key with
// RFC 6979 nonces.
type goldenCase struct {
	Name   string `json:"name"`
	Ticket Ticket `json:"ticket"`
	Hex    string `json:"hex"`
}

// TestGolden checks the encodings of testdata/golden.json: one ticket per
// length form of the E1 template (E1 76, E1 81 AC, E1 82 01 5A), the largest
// ticket, and the ticket of vectors.json. Each must also decode back to its
// fields and verify.
func TestGolden(t *testing.T) {
	v := vectors(t)
	k := issuerKey(t, v)
	keys, err := NewKeySet(&k.PublicKey)
	require.NoError(t, err)
	path := filepath.Join("testdata", "golden.json")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var cases []goldenCase
	require.NoError(t, json.Unmarshal(raw, &cases))
	require.NotEmpty(t, cases)
	for i := range cases {
		c := &cases[i]
		t.Run(c.Name, func(t *testing.T) {
			tk := c.Ticket
			require.NoError(t, tk.Sign(deterministic{k}))
			enc, err := tk.Marshal()
			require.NoError(t, err)
			if *update {
				c.Hex = hex.EncodeToString(enc)
				return
			}
			assert.Equal(t, c.Hex, hex.EncodeToString(enc))
			want, err := hex.DecodeString(c.Hex)
			require.NoError(t, err)
			dec, err := Unmarshal(want)
			require.NoError(t, err)
			assert.Equal(t, &tk, dec)
			assert.NoError(t, dec.Verify(keys))
		})
	}
	if *update {
		for i := range cases {
			cases[i].Ticket.Signature = nil
			cases[i].Ticket.KeyID = KeyID{}
		}
		out, err := json.MarshalIndent(cases, "", " ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(out, '\n'), 0o644))
	}
}
