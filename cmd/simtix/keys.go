package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/ticketfmt"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "The issuer's keys: list them, rotate the current one",
	}
	return groupCmd(cmd, newKeysListCmd(), newKeysRotateCmd())
}

// keysWhere are the two places the keys commands reach the keys: a running
// server or a data directory.
type keysWhere struct {
	server, dataDir string
}

// check returns a usage error unless exactly one of the two is given.
func (w keysWhere) check() error {
	if (w.server == "") == (w.dataDir == "") {
		return usagef("give --server URL (a running server) or --data-dir DIR (one of them)")
	}
	return nil
}

// keysListJSON is `keys list --json`'s document.
type keysListJSON struct {
	// From is the server URL or the issuer-keys.pem file read.
	From string            `json:"from"`
	Keys []ticketfmt.KeyID `json:"keys"`
}

func newKeysListCmd() *cobra.Command {
	var where keysWhere
	var asJSON, asPEM bool
	cmd := &cobra.Command{
		Use:   "list (--server URL | --data-dir DIR) [--json | --pem]",
		Short: "List the issuer's public keys, current and retired: what gates must trust",
		Long: `List the issuer's public keys by key ID, the current one and those retired
by rotations: the keys gates must trust (simtix gate --issuer-keys). They
come from a running server (--server, GET /v1/issuer-keys) or from a data
directory's issuer-keys.pem (--data-dir; the server may be running or not).

With --pem the key set is printed as PEM, the form of issuer-keys.pem, to
give to gates.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := where.check(); err != nil {
				return err
			}
			if asJSON && asPEM {
				return usagef("--json and --pem: choose one")
			}
			var set *ticketfmt.KeySet
			from := where.server
			if where.server != "" {
				c, err := apiclient.New(where.server, "", nil)
				if err != nil {
					return usageError{err}
				}
				if set, err = c.IssuerKeys(cmd.Context()); err != nil {
					return err
				}
			} else {
				from = filepath.Join(where.dataDir, issuer.KeySetFile)
				var err error
				if set, err = readKeySetFile(from); err != nil {
					return err
				}
			}
			switch {
			case asJSON:
				return writeJSON(cmd, keysListJSON{From: from, Keys: set.IDs()})
			case asPEM:
				pem, err := set.MarshalPEM()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(pem)
				return err
			}
			out := cmd.OutOrStdout()
			for _, id := range set.IDs() {
				fmt.Fprintln(out, id)
			}
			_, err := fmt.Fprintf(out, "%d issuer keys (from %s)\n", set.Len(), from)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&where.server, "server", "", "the URL of a running server")
	f.StringVar(&where.dataDir, "data-dir", "", "a server's data directory (reads its issuer-keys.pem)")
	f.BoolVar(&asJSON, "json", false, "print one JSON document")
	f.BoolVar(&asPEM, "pem", false, "print the key set as PEM (the form of issuer-keys.pem)")
	return cmd
}

// readKeySetFile reads an issuer-keys.pem file.
func readKeySetFile(path string) (*ticketfmt.KeySet, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: a server writes it to its data dir at its first start: check --data-dir", err)
	}
	if err != nil {
		return nil, err
	}
	set, err := ticketfmt.ParseKeySetPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

func newKeysRotateCmd() *cobra.Command {
	var where keysWhere
	var tokenFile, issuerKey string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate (--server URL --token-file FILE | --data-dir DIR [--issuer-key SPEC]) [--json]",
		Short: "Make a new issuer key current; the retired keys still verify what they signed",
		Long: `Rotate the issuer key: a new key becomes current, and the tickets and card
certificates signed from now on carry its key ID. The retired keys stay in
the key set (GET /v1/issuer-keys and DATA_DIR/issuer-keys.pem, rewritten
before the new key signs anything), so that what they signed still
verifies. Give gates the new key set (simtix keys list --pem).

With --server and --token-file (DATA_DIR/operator.token), a running server
rotates its key.

With --data-dir, the keys of a STOPPED server are rotated in its data
directory. Stop the server first: a running server would go on signing with
its old key, and would undo this rotation at its own next one. Give the
--issuer-key the server runs with (default: key files in the data
directory; tpm:/dev/tpmrm0, tpm:sim): the key lives there.

An issuer key that is a PEM file the operator gave (--issuer-key FILE)
cannot be rotated: make a new key file and restart the server with it (its
old key stays trusted).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := where.check(); err != nil {
				return err
			}
			var rot api.KeyRotation
			if where.server != "" {
				if issuerKey != "" {
					return usagef("--issuer-key goes with --data-dir: a running server rotates the key it runs with")
				}
				if tokenFile == "" {
					return usagef("--server needs --token-file (the operator token, DATA_DIR/operator.token)")
				}
				token, err := readToken(tokenFile)
				if err != nil {
					return err
				}
				c, err := apiclient.New(where.server, token, nil)
				if err != nil {
					return usageError{err}
				}
				if rot, err = c.RotateIssuerKey(cmd.Context()); err != nil {
					return err
				}
			} else {
				if tokenFile != "" {
					return usagef("--token-file goes with --server")
				}
				var err error
				if rot, err = rotateOffline(cmd.Context(), where.dataDir, issuerKey, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd, rot)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "issuer key rotated: %v is current\n", rot.Current)
			ids := make([]string, len(rot.Keys))
			for i, id := range rot.Keys {
				ids[i] = id.String()
				if id == rot.Current {
					ids[i] += " (current)"
				}
			}
			fmt.Fprintf(out, "%d issuer keys: %s\n", len(rot.Keys), strings.Join(ids, ", "))
			var err error
			if where.server != "" {
				_, err = fmt.Fprintf(out, "give gates the new key set: 'simtix keys list --server %s --pem', or the server's DATA_DIR/%s\n", where.server, issuer.KeySetFile)
			} else {
				_, err = fmt.Fprintf(out, "give gates the new key set: %s (rewritten)\n", filepath.Join(where.dataDir, issuer.KeySetFile))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&where.server, "server", "", "the URL of a running server")
	f.StringVar(&tokenFile, "token-file", "", "operator token file (DATA_DIR/operator.token), with --server")
	f.StringVar(&where.dataDir, "data-dir", "", "the data directory of a stopped server")
	f.StringVar(&issuerKey, "issuer-key", "", "with --data-dir: where the server's issuer key lives, as 'simtix server --issuer-key' (default: key files in the data dir)")
	f.BoolVar(&asJSON, "json", false, "print one JSON document")
	return cmd
}

// rotateOffline rotates the issuer key in the data directory of a stopped
// server. When the key spec names another place than the current key's,
// opening the keys already makes the key of spec current (issuer.Open): that
// is then the rotation, and w is told so.
func rotateOffline(ctx context.Context, dir, spec string, w io.Writer) (_ api.KeyRotation, err error) {
	before, err := readKeySetFile(filepath.Join(dir, issuer.KeySetFile))
	if err != nil {
		return api.KeyRotation{}, err
	}
	keys, err := issuer.Open(ctx, dir, spec)
	if err != nil {
		return api.KeyRotation{}, err
	}
	defer func() {
		if cerr := keys.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	var id ticketfmt.KeyID
	if keys.KeySet().Len() > before.Len() {
		if id, err = ticketfmt.KeyIDOf(keys.Signer().Public()); err != nil {
			return api.KeyRotation{}, err
		}
		place := "the data directory"
		if spec != "" {
			place = spec
		}
		fmt.Fprintf(w, "simtix: the current issuer key was not in %s: its key %v became current on opening, which is the rotation; start the server with the same --issuer-key\n", place, id)
	} else if id, err = keys.Rotate(ctx); err != nil {
		return api.KeyRotation{}, err
	}
	set := keys.KeySet()
	pem, err := set.MarshalPEM()
	if err != nil {
		return api.KeyRotation{}, err
	}
	return api.KeyRotation{Current: id, Keys: set.IDs(), PEM: string(pem)}, nil
}
