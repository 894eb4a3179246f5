package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/simtix/simtix/ticketfmt"
)

// dataBackend keeps the issuer keys as files in the data directory:
// issuer-key.pem, then issuer-key-N.pem for the N-th.
type dataBackend struct {
	dir string
}

func (b *dataBackend) source() string     { return sourceData }
func (b *dataBackend) owns(e *entry) bool { return e.Source == sourceData }
func (b *dataBackend) close() error       { return nil }

func (b *dataBackend) load(_ context.Context, e *entry) (*key, error) {
	path := filepath.Join(b.dir, e.File)
	b0, err := readSecret(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s, the current issuer key, is missing: restore it from a backup "+
			"(or start with another --issuer-key: its key becomes current, the recorded keys stay trusted)", path)
	}
	if err != nil {
		return nil, err
	}
	k, err := parsePrivateKey(path, b0)
	if err != nil {
		return nil, err
	}
	if k.entry.ID != e.ID {
		return nil, fmt.Errorf("%s holds key %v: %w %v: restore it from a backup", path, k.entry.ID, ErrKeyMismatch, e.ID)
	}
	k.entry = *e
	return k, nil
}

func (b *dataBackend) next(_ context.Context, r *record) (*key, error) {
	var names []string
	for _, e := range r.Keys {
		if e.Source == sourceData {
			names = append(names, e.File)
		}
	}
	n := len(names) + 1
	for slices.Contains(names, dataKeyFile(n)) {
		n++
	}
	name := dataKeyFile(n)
	// A file of that name that the record does not know was made by a
	// rotation cut off before the record was written: it never signed, and
	// is adopted.
	path := filepath.Join(b.dir, name)
	k, err := loadOrCreate(path, func(b []byte) (*key, error) { return parsePrivateKey(path, b) }, newPrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	k.entry.Source, k.entry.File = sourceData, name
	return k, nil
}

// dataKeyFile is the name of the n-th key file in the data directory.
func dataKeyFile(n int) string {
	if n == 1 {
		return defaultKeyFile
	}
	return fmt.Sprintf("issuer-key-%d.pem", n)
}

// fileBackend is a key file the operator gave; a file that does not exist
// yet is made (0600) on first start, as cli.md says of the PEM file.
type fileBackend struct {
	path string // absolute
}

func (b *fileBackend) source() string                                   { return sourceFile }
func (b *fileBackend) owns(*entry) bool                                 { return false }
func (b *fileBackend) close() error                                     { return nil }
func (b *fileBackend) load(ctx context.Context, _ *entry) (*key, error) { return b.next(ctx, nil) }

func (b *fileBackend) next(context.Context, *record) (*key, error) {
	k, err := loadOrCreate(b.path, func(data []byte) (*key, error) { return parsePrivateKey(b.path, data) }, newPrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	k.entry.Source, k.entry.File = sourceFile, b.path
	return k, nil
}

// newPrivateKeyPEM makes a new ECDSA P-256 key, in PKCS#8 PEM.
func newPrivateKeyPEM() ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parsePrivateKey reads an ECDSA P-256 private key from PEM data: one "EC
// PRIVATE KEY" (SEC 1) or "PRIVATE KEY" (PKCS#8) block, and optionally the
// "EC PARAMETERS" block openssl ecparam writes before it.
func parsePrivateKey(path string, data []byte) (*key, error) {
	var priv any
	for n := 1; ; n++ {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		if block.Type == "EC PARAMETERS" {
			continue
		}
		if priv != nil {
			return nil, fmt.Errorf("%s: %w: more than one PEM block besides EC PARAMETERS", path, ErrMalformed)
		}
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			priv, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("%s: block %d is %q: %w: want an unencrypted ECDSA P-256 \"PRIVATE KEY\" or \"EC PRIVATE KEY\"",
				path, n, block.Type, ErrMalformed)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: block %d: %w: %w", path, n, ErrMalformed, err)
		}
	}
	if priv == nil {
		return nil, fmt.Errorf("%s: %w: no PEM private key found", path, ErrMalformed)
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		var what string
		switch p := priv.(type) {
		case *ecdsa.PrivateKey:
			what = "ECDSA " + p.Curve.Params().Name
		case *rsa.PrivateKey:
			what = "RSA"
		case ed25519.PrivateKey:
			what = "Ed25519"
		default:
			what = fmt.Sprintf("%T", priv)
		}
		return nil, fmt.Errorf("%s holds an %s key: %w: the issuer key must be ECDSA P-256 "+
			"(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)", path, what, ticketfmt.ErrKeyType)
	}
	e, err := newEntry(&ec.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &key{entry: e, signer: ec, close: func() {}}, nil
}
