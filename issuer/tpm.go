package issuer

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/google/go-tpm-tools/client"
	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/legacy/tpm2"
)

// tpmBackend keeps the issuer keys in a TPM (or the simulator) as primary
// keys of the owner hierarchy, derived again at each start from a template
// numbered by the record's index.
type tpmBackend struct {
	src    string // sourceTPM or sourceTPMSim
	device string // the device path, or "sim"

	mu  sync.Mutex // serialises the TPM commands
	rwc io.ReadWriteCloser
}

// openDevice opens the TPM at path.
func openDevice(ctx context.Context, path string) (*tpmBackend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rwc, err := tpm2.OpenTPM(path)
	if err != nil {
		return nil, fmt.Errorf("open TPM: %w", err)
	}
	return &tpmBackend{src: sourceTPM, device: path, rwc: rwc}, nil
}

// openSimulator starts the go-tpm-tools simulator with the seed kept in the
// file seedPath (made on first use), waiting while another Keys of the
// process holds it, as long as ctx allows.
func openSimulator(ctx context.Context, seedPath string) (*tpmBackend, error) {
	seed, err := loadOrCreate(seedPath, func(b []byte) (int64, error) {
		s := strings.TrimSpace(string(b))
		v, err := hex.DecodeString(s)
		if err != nil || len(v) != 8 {
			return 0, fmt.Errorf("%s: %w: want 16 hex digits (the TPM simulator's seed); "+
				"restore it from a backup (without it the simulator's keys are lost)", seedPath, ErrMalformed)
		}
		return int64(binary.BigEndian.Uint64(v)), nil
	}, func() ([]byte, error) { return randomHex(8) })
	if err != nil {
		return nil, err
	}
	type result struct {
		sim *simulator.Simulator
		err error
	}
	got := make(chan result, 1)
	go func() {
		sim, err := simulator.GetWithFixedSeedInsecure(seed)
		got <- result{sim, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			return nil, fmt.Errorf("start TPM simulator: %w", r.err)
		}
		return &tpmBackend{src: sourceTPMSim, device: "sim", rwc: r.sim}, nil
	case <-ctx.Done():
		go func() { // give the simulator back when it comes
			if r := <-got; r.err == nil {
				r.sim.Close()
			}
		}()
		return nil, fmt.Errorf("waiting for the TPM simulator (one per process, in use): %w", ctx.Err())
	}
}

func (b *tpmBackend) source() string     { return b.src }
func (b *tpmBackend) owns(e *entry) bool { return e.Source == b.src }

func (b *tpmBackend) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rwc.Close()
}

func (b *tpmBackend) load(ctx context.Context, e *entry) (*key, error) {
	k, err := b.key(ctx, e.Index)
	if err != nil {
		return nil, err
	}
	if k.entry.ID != e.ID {
		k.close()
		return nil, fmt.Errorf("TPM %s gives key %v for index %d: %w %v: its owner hierarchy was cleared, "+
			"or it is another TPM; that key is lost. Restore that TPM, or start once with another --issuer-key: "+
			"its key becomes current, and the recorded keys stay trusted", b.device, k.entry.ID, e.Index, ErrKeyMismatch, e.ID)
	}
	k.entry = *e
	return k, nil
}

func (b *tpmBackend) next(ctx context.Context, r *record) (*key, error) {
	index := 1
	for _, e := range r.Keys {
		if e.Source == b.src && e.Index >= index {
			index = e.Index + 1
		}
	}
	return b.key(ctx, index)
}

// key derives the TPM key of the given index.
func (b *tpmBackend) key(ctx context.Context, index int) (*key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tk, err := client.NewKey(b.rwc, tpm2.HandleOwner, tpmTemplate(index))
	if err != nil {
		return nil, fmt.Errorf("TPM %s: create key %d in the owner hierarchy (which must have an empty authorization): %w",
			b.device, index, err)
	}
	signer, err := tk.GetSigner()
	if err == nil {
		var e entry
		if e, err = newEntry(tk.PublicKey()); err == nil {
			e.Source, e.Index = b.src, index
			if b.src == sourceTPM {
				e.Device = b.device
			}
			return &key{
				entry:  e,
				signer: &lockedSigner{mu: &b.mu, s: signer},
				close: func() {
					b.mu.Lock()
					defer b.mu.Unlock()
					tk.Close()
				},
			}, nil
		}
	}
	tk.Close()
	return nil, fmt.Errorf("TPM %s: key %d: %w", b.device, index, err)
}

// tpmTemplate is the template of the index-th TPM issuer key: go-tpm-tools'
// ECC attestation key template (ECDSA P-256 with SHA-256), unrestricted so
// that it signs any digest, made unique by the index.
func tpmTemplate(index int) tpm2.Public {
	t := client.AKTemplateECC()
	t.Attributes &^= tpm2.FlagRestricted
	unique := sha256.Sum256(fmt.Appendf(nil, "simtix issuer key %d", index))
	t.ECCParameters.Point.XRaw = unique[:]
	return t
}

// lockedSigner serialises a TPM signer's use of the TPM with the backend's
// other commands.
type lockedSigner struct {
	mu *sync.Mutex
	s  crypto.Signer
}

func (l *lockedSigner) Public() crypto.PublicKey { return l.s.Public() }

func (l *lockedSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Sign(rand, digest, opts)
}
