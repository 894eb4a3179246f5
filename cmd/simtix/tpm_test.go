package main

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/ticketfmt"
)

// TestServerTPMSim runs `simtix server --issuer-key tpm:sim`: tickets and
// the card certificate are signed in the (simulated) TPM and verify with
// issuer-keys.pem, at a gate too; the key rotates in the TPM, online and
// offline, and what the old keys signed still verifies.
func TestServerTPMSim(t *testing.T) {
	r := newRoles(t, "--issuer-key", "tpm:sim")
	assert.NoFileExists(t, r.srv.File("issuer-key.pem"), "the key is in the TPM")
	assert.FileExists(t, r.srv.File("tpm-sim.seed"))

	t1 := r.orderHall("2026-12-12", "t1")
	key1 := r.verifiedBy(t1)
	s := r.sync()
	assert.Equal(t, 1, s.Stored)
	code, out, errOut := r.gate(t.TempDir()+"/j1", "--venue", "Simtix Hall", "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.True(t, decodeJSON[gateJSON](t, out).Accepted, "certificate and ticket signed in the TPM")

	// Rotation in the TPM, while the server runs.
	rot := r.rotate()
	assert.NotEqual(t, key1, rot.Current)
	assert.ElementsMatch(t, rot.Keys, r.listKeys("--data-dir", r.srv.Dir))
	t2 := r.orderHall("2026-12-13", "t2")
	assert.Equal(t, rot.Current, r.verifiedBy(t2))
	assert.Equal(t, key1, r.verifiedBy(t1))
	s = r.sync()
	assert.Equal(t, 1, s.Stored, "the checked ticket left, the new one came")
	// The new ticket on the card certified by the old key: accepted with
	// the rewritten issuer-keys.pem.
	code, out, errOut = r.gate(t.TempDir()+"/j2", "--venue", "Simtix Hall", "--now", "2026-12-13T19:00:00Z", "--json")
	require.Equal(t, exitOK, code, errOut)
	v := decodeJSON[gateJSON](t, out)
	assert.True(t, v.Accepted)
	require.NotNil(t, v.Ticket)
	raw, err := hex.DecodeString(t2)
	require.NoError(t, err)
	tk, err := ticketfmt.Unmarshal(raw)
	require.NoError(t, err)
	assert.Equal(t, tk.ID, v.Ticket.ID)
	assert.Equal(t, rot.Current, v.Ticket.KeyID)

	// Offline, the server stopped (the simulator is one per process).
	require.Equal(t, exitOK, r.srv.Stop())
	off := decodeJSON[api.KeyRotation](t, simtixOK(t, "keys", "rotate", "--data-dir", r.srv.Dir, "--issuer-key", "tpm:sim", "--json"))
	assert.Len(t, off.Keys, 3)
	assert.NoFileExists(t, r.srv.File("issuer-key.pem"), "still in the TPM")
	r.restart("--issuer-key", "tpm:sim")
	assert.Equal(t, off.Current, r.verifiedBy(r.orderHall("2026-12-14", "t3")))
	assert.Equal(t, off.Keys, r.listKeys())
	assert.Equal(t, key1, r.verifiedBy(t1))
}
