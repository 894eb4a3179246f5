package issuer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxFileSize bounds what is read from any file of the data directory.
const maxFileSize = 1 << 20

// secretMode is the mode of the secret files; publicMode of the public ones.
const (
	secretMode fs.FileMode = 0o600
	publicMode fs.FileMode = 0o644
)

// checkDir creates the data directory (0700) if it is missing and refuses one
// that group or other may write to.
func checkDir(dir string) error {
	if dir == "" {
		return errors.New("issuer: no data directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("issuer: data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("issuer: data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("issuer: data directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("issuer: data directory %s has mode %04o: %w: others could replace its secrets (chmod go-w %s)",
			dir, fi.Mode().Perm(), ErrPermissions, dir)
	}
	return nil
}

// readFile reads a regular file of at most maxFileSize bytes and refuses it
// when its mode has any of the bits in forbidden (secretForbidden or
// recordForbidden).
func readFile(path string, forbidden fs.FileMode) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, ErrMalformed)
	}
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		if forbidden == secretForbidden {
			return nil, fmt.Errorf("%s has mode %04o: %w: a secret must be for its owner only (chmod 600 %s)",
				path, perm, ErrPermissions, path)
		}
		return nil, fmt.Errorf("%s has mode %04o: %w: others could change it (chmod go-w %s)",
			path, perm, ErrPermissions, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, maxFileSize, ErrMalformed)
	}
	return b, nil
}

// Permission bits refused on secret files and on the key record.
const (
	secretForbidden fs.FileMode = 0o077
	recordForbidden fs.FileMode = 0o022
)

// readSecret reads a secret file: owner-only permissions required.
func readSecret(path string) ([]byte, error) { return readFile(path, secretForbidden) }

// createExclusive creates path holding data with the given mode, only if
// path does not exist (the error then wraps fs.ErrExist). The file appears
// complete or not at all: data is written to a temporary file, synced, and
// hard-linked to path.
func createExclusive(path string, data []byte, mode fs.FileMode) error {
	dir, base := filepath.Split(path)
	tmp, err := writeTemp(dir, base, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeAtomic replaces path with data (mode given) by a temporary file and a
// rename: readers see the old file or the new one, never a part.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	dir, base := filepath.Split(path)
	tmp, err := writeTemp(dir, base, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// writeTemp writes data to a new temporary file next to base in dir, with
// the given mode, synced, and returns its path.
func writeTemp(dir, base string, data []byte, mode fs.FileMode) (string, error) {
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*") // created 0600
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(data)
	if err == nil && mode != secretMode {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadOrCreate reads the secret file at path with parse; when it is missing
// it creates it with the bytes make returns (owner-only) and parses those.
func loadOrCreate[T any](path string, parse func([]byte) (T, error), make func() ([]byte, error)) (T, error) {
	var zero T
	for range 2 {
		b, err := readSecret(path)
		if err == nil {
			return parse(b)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return zero, err
		}
		data, err := make()
		if err != nil {
			return zero, err
		}
		err = createExclusive(path, data, secretMode)
		if err == nil {
			return parse(data)
		}
		if !errors.Is(err, fs.ErrExist) {
			return zero, fmt.Errorf("create %s: %w", path, err)
		}
		// Made meanwhile by another process: read that one.
	}
	return zero, fmt.Errorf("create %s: it appears and disappears", path)
}

// randomHex returns n random bytes in hex and a newline.
func randomHex(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(b) + "\n"), nil
}

// parseHex32 reads 64 hex digits (32 bytes), ignoring whitespace, as simtix
// card new --master-key does.
func parseHex32(b []byte) ([]byte, bool) {
	v, err := hex.DecodeString(strings.Join(strings.Fields(string(b)), ""))
	if err != nil || len(v) != 32 {
		return nil, false
	}
	return v, true
}

// parseMaster parses master.key.
func parseMaster(path string) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		v, ok := parseHex32(b)
		if !ok {
			return nil, fmt.Errorf("%s: %w: want 64 hex digits (the card master secret); "+
				"restore it from a backup, and remove it only if no card was personalised with it",
				path, ErrMalformed)
		}
		return v, nil
	}
}

// parseToken parses a token file: 64 hex digits on one line.
func parseToken(path string) func([]byte) (string, error) {
	return func(b []byte) (string, error) {
		s := strings.TrimSpace(string(b))
		if _, ok := parseHex32(b); !ok || strings.ContainsAny(s, " \t\r\n") {
			return "", fmt.Errorf("%s: %w: want one line of 64 hex digits; "+
				"remove it to make a new token (its holders then need the new one)", path, ErrMalformed)
		}
		return s, nil
	}
}
