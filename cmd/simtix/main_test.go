package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/internal/testvectors"
	"github.com/simtix/simtix/ticketfmt"
)

// simtix runs the command line in-process and returns its exit status and
// output.
func simtix(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelp(t *testing.T) {
	code, out, _ := simtix(t, "--help")
	assert.Equal(t, 0, code)
	for _, sub := range []string{"card", "demo", "ticket", "version", "keys", "server", "order", "tickets", "sync", "gate"} {
		assert.Contains(t, out, sub)
	}
	code, out, _ = simtix(t, "ticket", "explain", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "--issuer-keys")
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"no-such-command"},
		{"demo", "extra"},
		{"ticket", "explain"},
		{"ticket", "explain", "zz"},
		{"ticket", "explain", "--no-such-flag", "00"},
	} {
		code, _, errOut := simtix(t, args...)
		assert.Equal(t, exitUsage, code, "%v", args)
		assert.NotEmpty(t, errOut, "%v", args)
	}
}

// TestGroupCommands runs every command that groups others (simtix itself,
// card, keys, ticket, ...) alone and followed by a word that names none of
// its commands: alone it prints its help and exits 0; a mistyped command
// is a usage error, exit 2, that names it and the group's commands on
// stderr and prints nothing on stdout.
func TestGroupCommands(t *testing.T) {
	var groups [][]string
	var walk func(path []string, c *cobra.Command)
	walk = func(path []string, c *cobra.Command) {
		if !c.HasSubCommands() {
			return
		}
		groups = append(groups, path)
		for _, sub := range c.Commands() {
			walk(append(append([]string(nil), path...), sub.Name()), sub)
		}
	}
	walk(nil, newRootCmd())
	require.GreaterOrEqual(t, len(groups), 4, "simtix, card, keys, ticket: %q", groups)
	for _, path := range groups {
		name := strings.Join(append([]string{"simtix"}, path...), " ")
		t.Run(name, func(t *testing.T) {
			code, out, errOut := simtix(t, path...)
			assert.Equal(t, exitOK, code, errOut)
			assert.Contains(t, out, "Available Commands:", "alone, its help")
			assert.Empty(t, errOut)

			code, out, errOut = simtix(t, append(path, "bogus")...)
			assert.Equal(t, exitUsage, code, "%s bogus: %s", name, errOut)
			assert.Empty(t, out, "%s bogus: nothing on stdout", name)
			assert.Contains(t, errOut, fmt.Sprintf("simtix: unknown command %q for %q", "bogus", name))
			cmd, _, err := newRootCmd().Find(path)
			require.NoError(t, err)
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					assert.Contains(t, errOut, sub.Name(), "the message names the group's commands")
				}
			}
			assert.Contains(t, errOut, "Run 'simtix --help' or 'simtix COMMAND --help' for usage.")
		})
	}
	assert.Contains(t, groups, []string{"completion"}, "cobra's completion command is a group too")
	// A near miss gets a suggestion.
	code, _, errOut := simtix(t, "card", "shwo")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "did you mean show?")

	// simtix help: the same.
	code, out, errOut := simtix(t, "help", "card")
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "simtix card [command]")
	for _, args := range [][]string{{"help", "bogus"}, {"help", "card", "bogus"}, {"help", "card", "show", "bogus"}} {
		code, out, errOut := simtix(t, args...)
		assert.Equal(t, exitUsage, code, "%q: %s", args, errOut)
		assert.Empty(t, out, "%q", args)
		assert.Contains(t, errOut, `simtix: unknown command "bogus"`, "%q", args)
	}
}

func TestDemo(t *testing.T) {
	code, out, errOut := simtix(t, "demo")
	require.Equal(t, 0, code, "%s\n%s", errOut, out)
	assert.Contains(t, out, "signature: verified")
	assert.Contains(t, out, "signature does not verify")
	assert.Contains(t, out, "carrier binding")
	assert.Contains(t, out, "11 go straight to the card (direct) and 13 wait in the virtual ticket box")
	assert.Equal(t, 24, strings.Count(out, "ACCEPTED"))
	assert.NotContains(t, out, "REFUSED")
	assert.Contains(t, out, "box → handset: 11 tickets due to the card")
	assert.Contains(t, out, "the deny list now names 24 checked tickets")
	assert.Contains(t, out, "Every one of the 24 tickets was checked exactly once (24 checked)")
}

// vectorKeyFile writes the issuer public key of vectors.json as a key set
// file (as issuer-keys.pem) and returns it with the vectors.
func vectorKeyFile(t *testing.T) (*testvectors.Vectors, string) {
	t.Helper()
	v, err := testvectors.Load()
	require.NoError(t, err)
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.IssuerPrivateScalar)
	require.NoError(t, err)
	keys, err := ticketfmt.NewKeySet(&k.PublicKey)
	require.NoError(t, err)
	pemBytes, err := keys.MarshalPEM()
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "issuer-keys.pem")
	require.NoError(t, os.WriteFile(keyFile, pemBytes, 0o600))
	return v, keyFile
}

func TestTicketExplainVector(t *testing.T) {
	v, keyFile := vectorKeyFile(t)

	// Upper case with spaces, as cli.md allows.
	arg := strings.ToUpper(hex.EncodeToString(v.TicketE1[:20])) + " " + hex.EncodeToString(v.TicketE1[20:])
	code, out, errOut := simtix(t, "ticket", "explain", "--issuer-keys", keyFile, arg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "国家大剧院")
	assert.Contains(t, out, "2026-12-05")
	assert.Contains(t, out, "signature verified with issuer key 9f12b0b6")

	code, out, errOut = simtix(t, "ticket", "explain", "--json", hex.EncodeToString(v.CardCertificateE5))
	require.Equal(t, 0, code, errOut)
	var doc struct {
		Fields []ticketfmt.FieldInfo `json:"fields"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.Len(t, doc.Fields, 5)
	assert.Equal(t, ticketfmt.TagPublicKey, doc.Fields[3].Tag)

	bad := append([]byte(nil), v.TicketE1...)
	bad[len(bad)-1] ^= 1
	code, _, errOut = simtix(t, "ticket", "explain", "--issuer-keys", keyFile, hex.EncodeToString(bad))
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "signature does not verify")

	code, _, errOut = simtix(t, "ticket", "explain", hex.EncodeToString(v.TicketE1[:50]))
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "tag E1 at offset 0")
}
