package issuer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/simtix/simtix/ticketfmt"
)

// Where an issuer key's private half lives: the source of a record entry.
const (
	sourceData    = "data"    // a key file in the data directory
	sourceFile    = "file"    // a key file the operator gave
	sourceTPM     = "tpm"     // a TPM device
	sourceTPMSim  = "tpm-sim" // the go-tpm-tools simulator
	recordVersion = 1
)

// record is the key record, issuer-keys.json: every issuer key ever used,
// oldest first. The last one is current.
type record struct {
	Version int     `json:"version"`
	Keys    []entry `json:"keys"`
}

// entry is one issuer key of the record.
type entry struct {
	ID     ticketfmt.KeyID `json:"id"`
	Source string          `json:"source"`
	// File is the key file: a name in the data directory (source data) or
	// the absolute path the operator gave (source file, for information).
	File string `json:"file,omitempty"`
	// Index is the TPM key's template index (sources tpm and tpm-sim).
	Index int `json:"index,omitempty"`
	// Device is the TPM device the key was made in, for information.
	Device string `json:"device,omitempty"`
	// Public is the SubjectPublicKeyInfo DER of the key.
	Public []byte    `json:"public"`
	Added  time.Time `json:"added"`

	pub *ecdsa.PublicKey
}

// newEntry returns an entry for the public key pub, filling ID and Public.
func newEntry(pub crypto.PublicKey) (entry, error) {
	id, err := ticketfmt.KeyIDOf(pub)
	if err != nil {
		return entry{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return entry{}, err
	}
	return entry{ID: id, Public: der, Added: time.Now().UTC().Truncate(time.Second), pub: pub.(*ecdsa.PublicKey)}, nil
}

// current is the record's current key, or nil for an empty record.
func (r *record) current() *entry {
	if len(r.Keys) == 0 {
		return nil
	}
	return &r.Keys[len(r.Keys)-1]
}

// find returns the entry with the given key ID, or nil.
func (r *record) find(id ticketfmt.KeyID) *entry {
	for i := range r.Keys {
		if r.Keys[i].ID == id {
			return &r.Keys[i]
		}
	}
	return nil
}

// keySet returns the public keys of every entry.
func (r *record) keySet() *ticketfmt.KeySet {
	s := &ticketfmt.KeySet{}
	for _, e := range r.Keys {
		if _, err := s.Add(e.pub); err != nil {
			panic(err) // checked by newEntry and readRecord
		}
	}
	return s
}

// with returns a copy of r with e appended (the new current key).
func (r *record) with(e entry) *record {
	return &record{Version: recordVersion, Keys: append(r.Keys[:len(r.Keys):len(r.Keys)], e)}
}

// readRecord reads the key record at path; a missing file is an empty record.
func readRecord(path string) (*record, error) {
	b, err := readFile(path, recordForbidden)
	if errors.Is(err, fs.ErrNotExist) {
		return &record{Version: recordVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s; restore it from a backup (without it the retired keys are forgotten)",
			path, ErrMalformed, fmt.Sprintf(format, args...))
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, bad("%v", err)
	}
	if r.Version != recordVersion {
		return nil, bad("version %d, want %d", r.Version, recordVersion)
	}
	if len(r.Keys) == 0 {
		return nil, bad("no key")
	}
	seen := make(map[ticketfmt.KeyID]bool)
	for i := range r.Keys {
		e := &r.Keys[i]
		pub, err := x509.ParsePKIXPublicKey(e.Public)
		if err != nil {
			return nil, bad("key %d: %v", i+1, err)
		}
		id, err := ticketfmt.KeyIDOf(pub)
		if err != nil {
			return nil, bad("key %d: %v", i+1, err)
		}
		if id != e.ID {
			return nil, bad("key %d: ID %v does not match its public key (%v)", i+1, e.ID, id)
		}
		if seen[id] {
			return nil, bad("key %v listed twice", id)
		}
		seen[id] = true
		e.pub = pub.(*ecdsa.PublicKey)
		switch e.Source {
		case sourceData:
			if e.File == "" || filepath.Base(e.File) != e.File || e.File == "." || e.File == ".." {
				return nil, bad("key %v: data key file %q is not a file name", id, e.File)
			}
		case sourceFile:
		case sourceTPM, sourceTPMSim:
			if e.Index < 1 {
				return nil, bad("key %v: TPM key index %d", id, e.Index)
			}
		default:
			return nil, bad("key %v: unknown source %q", id, e.Source)
		}
	}
	return &r, nil
}

// write stores the record at path, atomically.
func (r *record) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(path, append(b, '\n'), publicMode); err != nil {
		return fmt.Errorf("issuer: write %s: %w", path, err)
	}
	return nil
}

// writeKeySetPEM writes the public keys of r to path (issuer-keys.pem),
// atomically.
func (r *record) writeKeySetPEM(path string) error {
	b, err := r.keySet().MarshalPEM()
	if err != nil {
		return err
	}
	if err := writeAtomic(path, b, publicMode); err != nil {
		return fmt.Errorf("issuer: write %s: %w", path, err)
	}
	return nil
}
