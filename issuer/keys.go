package issuer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/simtix/simtix/ticketfmt"
)

// Names of the files of the data directory that others read.
const (
	// MasterFile holds the card master secret (simtix card new --master-key).
	MasterFile = "master.key"
	// OperatorTokenFile holds the operators' token.
	OperatorTokenFile = "operator.token"
	// GateTokenFile holds the gates' token.
	GateTokenFile = "gate.token"
	// KeySetFile holds the issuer public keys (simtix gate --issuer-keys).
	KeySetFile = "issuer-keys.pem"
)

// Names of the files of the data directory that only this package reads.
const (
	recordFile     = "issuer-keys.json"
	defaultKeyFile = "issuer-key.pem"
	simSeedFile    = "tpm-sim.seed"
)

// Errors of Open, Rotate and the signers. Open's errors name the file and
// say what to do.
var (
	// ErrPermissions means a secret file that group or other may access, or
	// a data directory or key record that they may write.
	ErrPermissions = errors.New("unsafe file permissions")
	// ErrMalformed means a file of the data directory, or a key file, that
	// exists but does not hold what it should.
	ErrMalformed = errors.New("malformed file")
	// ErrKeyMismatch means a key file or a TPM that no longer gives the key
	// the key record names.
	ErrKeyMismatch = errors.New("not the recorded issuer key")
	// ErrRetired means a key retired by a rotation: it still verifies what
	// it signed, but signs nothing more.
	ErrRetired = errors.New("issuer key retired")
	// ErrNoRotate means a rotation asked of a key file the operator gave.
	ErrNoRotate = errors.New("cannot rotate an issuer key file given by the operator")
	// ErrClosed means Keys used after Close.
	ErrClosed = errors.New("issuer keys closed")
)

// Keys are the network side's secrets in a data directory: the issuer
// signing key and every issuer public key, the card master secret, and the
// operator and gate tokens. They are safe for concurrent use.
type Keys struct {
	dir                      string
	master                   []byte
	operatorToken, gateToken string
	b                        backend

	// mu guards what follows; signers hold it for reading while they sign,
	// so that Rotate and Close wait for signatures in progress.
	mu     sync.RWMutex
	rec    *record
	cur    *key
	closed bool
}

// key is an open issuer key.
type key struct {
	entry  entry
	signer crypto.Signer // safe for concurrent use
	close  func()        // releases it (a TPM key's handle)
}

// backend is where the issuer key's private half lives, as the key spec says.
type backend interface {
	// source is the record source of the backend's keys.
	source() string
	// owns reports whether e, the record's current key, is the backend's
	// current key, which load then opens.
	owns(e *entry) bool
	// load opens the key of e.
	load(ctx context.Context, e *entry) (*key, error)
	// next returns the backend's next key after the keys of r: a new key,
	// or the key of the file the operator gave.
	next(ctx context.Context, r *record) (*key, error)
	// close releases the backend.
	close() error
}

// Open loads the keys and secrets of the data directory dataDir, creating
// what is missing on first start (the directory with 0700, master.key,
// operator.token, gate.token, the issuer key), and writes issuer-keys.pem.
// spec says where the issuer key lives: "" (key files in the data
// directory), a PEM file path ("file:" prefix optional; an EC P-256 "EC
// PRIVATE KEY" or PKCS#8 "PRIVATE KEY"; made, 0600, if it does not exist
// yet, its directory must), "tpm:sim" (the go-tpm-tools
// simulator) or "tpm:DEVICE" (such as tpm:/dev/tpmrm0). ctx bounds the wait
// for the TPM. The caller must Close the Keys.
func Open(ctx context.Context, dataDir, spec string) (_ *Keys, err error) {
	if err := checkDir(dataDir); err != nil {
		return nil, err
	}
	k := &Keys{dir: dataDir}
	path := k.path(MasterFile)
	if k.master, err = loadOrCreate(path, parseMaster(path), func() ([]byte, error) { return randomHex(32) }); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	path = k.path(OperatorTokenFile)
	if k.operatorToken, err = loadOrCreate(path, parseToken(path), func() ([]byte, error) { return randomHex(32) }); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	path = k.path(GateTokenFile)
	if k.gateToken, err = loadOrCreate(path, parseToken(path), func() ([]byte, error) { return randomHex(32) }); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	rec, err := readRecord(k.path(recordFile))
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}

	if k.b, err = openBackend(ctx, dataDir, spec); err != nil {
		return nil, fmt.Errorf("issuer key %s: %w", describe(spec), err)
	}
	defer func() {
		if err != nil {
			k.b.close()
		}
	}()
	newRec := rec
	if e := rec.current(); e != nil && k.b.owns(e) {
		k.cur, err = k.b.load(ctx, e)
	} else if k.cur, err = k.b.next(ctx, rec); err == nil {
		newRec, err = adopt(rec, k.cur)
		if err != nil {
			k.cur.close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("issuer key %s: %w", describe(spec), err)
	}
	if err := k.publish(newRec, newRec != rec); err != nil {
		k.cur.close()
		return nil, err
	}
	k.rec = newRec
	return k, nil
}

// adopt returns the record with k as its current key: r itself if k is r's
// current key already, else r with k appended. A retired key is refused.
func adopt(r *record, k *key) (*record, error) {
	if cur := r.current(); cur != nil && cur.ID == k.entry.ID {
		return r, nil
	}
	if old := r.find(k.entry.ID); old != nil {
		where := old.File
		if where == "" {
			where = fmt.Sprintf("%s key %d", old.Source, old.Index)
		}
		return nil, fmt.Errorf("key %v (%s, added %s): %w: give a new key", k.entry.ID, where,
			old.Added.Format("2006-01-02"), ErrRetired)
	}
	return r.with(k.entry), nil
}

// publish writes issuer-keys.pem for r, then r itself if changed: a new key
// is published to gates before anything is signed with it.
func (k *Keys) publish(r *record, changed bool) error {
	if err := r.writeKeySetPEM(k.path(KeySetFile)); err != nil {
		return err
	}
	if changed {
		return r.write(k.path(recordFile))
	}
	return nil
}

// path returns the path of a file of the data directory.
func (k *Keys) path(name string) string { return filepath.Join(k.dir, name) }

// describe names a key spec in errors.
func describe(spec string) string {
	if spec == "" {
		return "(default, in the data directory)"
	}
	return strconv.Quote(spec)
}

// openBackend opens the backend a key spec names.
func openBackend(ctx context.Context, dataDir, spec string) (backend, error) {
	switch {
	case spec == "":
		return &dataBackend{dir: dataDir}, nil
	case strings.HasPrefix(spec, "tpm:"):
		dev := strings.TrimPrefix(spec, "tpm:")
		if dev == "" {
			return nil, errors.New(`want tpm:DEVICE (such as tpm:/dev/tpmrm0) or tpm:sim`)
		}
		if dev == "sim" {
			return openSimulator(ctx, filepath.Join(dataDir, simSeedFile))
		}
		return openDevice(ctx, dev)
	default:
		path := strings.TrimPrefix(spec, "file:")
		if path == "" {
			return nil, errors.New(`want a key file path after "file:"`)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		return &fileBackend{path: abs}, nil
	}
}

// Signer returns the current issuer key (ECDSA P-256: Public returns an
// *ecdsa.PublicKey), for ticketfmt's Sign methods. It is safe for concurrent
// use; it signs with the key current when Signer was called, and fails with
// ErrRetired once Rotate has replaced that key, and with ErrClosed after
// Close.
func (k *Keys) Signer() crypto.Signer {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return &keySigner{k: k, key: k.cur}
}

// keySigner signs with one key as long as it is current.
type keySigner struct {
	k   *Keys
	key *key
}

// Public returns the key's *ecdsa.PublicKey.
func (s *keySigner) Public() crypto.PublicKey { return s.key.entry.pub }

// Sign signs a SHA-256 digest, returning an ASN.1 DER signature.
func (s *keySigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.k.mu.RLock()
	defer s.k.mu.RUnlock()
	switch {
	case s.k.closed:
		return nil, ErrClosed
	case s.k.cur != s.key:
		return nil, fmt.Errorf("key %v: %w", s.key.entry.ID, ErrRetired)
	}
	return s.key.signer.Sign(rand, digest, opts)
}

// KeySet returns every issuer public key, the current one and the retired
// ones: what verifiers trust. It is a snapshot: ask again after Rotate.
func (k *Keys) KeySet() *ticketfmt.KeySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.rec.keySet()
}

// Master returns a copy of the 32-byte card master secret.
func (k *Keys) Master() []byte { return append([]byte(nil), k.master...) }

// OperatorToken returns the operators' access token (64 hex digits).
func (k *Keys) OperatorToken() string { return k.operatorToken }

// GateToken returns the gates' access token (64 hex digits).
func (k *Keys) GateToken() string { return k.gateToken }

// Rotate makes a new issuer key current and returns its key ID: a new key
// file in the data directory, or a new key in the TPM. The previous key is
// retired: it stays in KeySet and issuer-keys.pem, which is rewritten (before
// the new key signs anything). It fails with ErrNoRotate when the key is a
// file the operator gave.
func (k *Keys) Rotate(ctx context.Context) (ticketfmt.KeyID, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ticketfmt.KeyID{}, ErrClosed
	}
	if k.b.source() == sourceFile {
		return ticketfmt.KeyID{}, fmt.Errorf("issuer: %w: make a new key file and restart with --issuer-key NEWFILE "+
			"(the key of %s then stays trusted for verification)", ErrNoRotate, k.b.(*fileBackend).path)
	}
	nk, err := k.b.next(ctx, k.rec)
	if err != nil {
		return ticketfmt.KeyID{}, fmt.Errorf("issuer: rotate: %w", err)
	}
	rec, err := adopt(k.rec, nk)
	if err == nil && rec == k.rec {
		err = fmt.Errorf("the new key %v is the current one", nk.entry.ID)
	}
	if err == nil {
		err = k.publish(rec, true)
	}
	if err != nil {
		nk.close()
		return ticketfmt.KeyID{}, fmt.Errorf("issuer: rotate: %w", err)
	}
	old := k.cur
	k.rec, k.cur = rec, nk
	old.close()
	return nk.entry.ID, nil
}

// Close releases the issuer key and the TPM. The secrets stay readable;
// signers fail with ErrClosed. Closing twice is harmless.
func (k *Keys) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	k.cur.close()
	if err := k.b.close(); err != nil {
		return fmt.Errorf("issuer: close: %w", err)
	}
	return nil
}
