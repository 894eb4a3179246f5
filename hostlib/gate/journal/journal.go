// Package journal is a gate's on-disk journal of its checks (network.md,
// "Gates"): append-only, synced at every append, locked while open, and
// uploaded to the server when the gate can reach it. It is not a database:
// it keeps every record in memory and is read whole when opened.
//
// A record the journal acknowledged (Append returned nil) survives any
// crash; a crash during an append loses at most that one record and never
// damages the ones before it. So does an upload mark (MarkUploaded).
//
// # File format
//
// Version 1, all integers big-endian. A 16-byte header, written once:
//
//	magic "SIMTIXJL"              8 bytes
//	format version (1)            uint16
//	flags (0)                     uint16
//	CRC-32C of the above          uint32
//
// then one frame per append, each written with one write and synced:
//
//	kind                          1 byte: 'C' a check, 'U' an upload mark
//	payload length                uint16: 111 for 'C', 8 for 'U'
//	payload
//	CRC-32C of kind, length and payload  uint32
//
// A check is ticket ID (10) ‖ serial (10) ‖ gate ID (4) ‖ check time (7,
// BCD YYYYMMDDhhmmss, a real date and time) ‖ nonce (16) ‖ receipt (64,
// raw r‖s); no two checks have the same ticket ID. An upload mark is a
// uint64: how many checks, from the first, the server has acknowledged;
// each mark is greater than the one before it and at most the number of
// checks before it.
//
// Open tells a torn last append from damage: a frame that does not decode
// is taken for a torn append, and cut off, only if it is at the very end
// (at most one frame's worth of bytes from it, with no valid frame starting
// in them). Anything else is refused with ErrCorrupt: no crash leaves a
// bad frame with good ones after it, since Open cuts a torn append off
// before anything else is appended. The one damage that cannot be told
// from a torn append is to the last frame itself; it is cut off as one,
// and Truncated reports it.
//
// # Files
//
// The journal at P is one file, mode 0600, locked with an exclusive
// flock(2) on the file itself while open: it is only ever appended to and
// cut back, never replaced. A new journal is written to a temporary file
// ".<name>.tmp-<16 hex digits>" in the same directory, synced and linked
// into place, so a crash leaves no journal or an empty one, never a
// half-written header; Open removes such temporary files.
package journal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/internal/durable"
	"github.com/simtix/simtix/ticketfmt"
)

// Errors, each returned wrapped with the journal's path and details. Test
// for them with errors.Is.
var (
	// ErrLocked is the cause when the journal is open elsewhere: in another
	// process, or through another Journal of this one.
	ErrLocked = errors.New("in use: locked by another open of the journal")
	// ErrCorrupt is the cause when a journal file is damaged in a way no
	// crash can explain (a torn last append is repaired, not refused).
	ErrCorrupt = errors.New("damaged")
	// ErrVersion is the cause when a journal has a format version this
	// package does not read.
	ErrVersion = errors.New("unsupported format version")
	// ErrNotJournal is the cause when the file is not a journal at all.
	ErrNotJournal = errors.New("not a simtix gate journal")
	// ErrInvalid is the cause when Append is given a record that cannot be
	// stored, or MarkUploaded a count beyond the pending records.
	ErrInvalid = errors.New("invalid")
	// ErrDuplicate is the cause when Append is given another check of a
	// ticket already in the journal.
	ErrDuplicate = errors.New("ticket already in the journal")
	// ErrBroken is the cause when an earlier write to the journal failed
	// and could not be undone, or failed to sync: what is on disk is no
	// longer known. Close the journal and open it again.
	ErrBroken = errors.New("an earlier write failed; reopen the journal")
)

// Record is one check the gate made.
type Record struct {
	// TicketID is the checked ticket.
	TicketID ticketfmt.ID
	// Serial is the certified serial of the card that holds it.
	Serial ticketfmt.Serial
	// Gate is the gate's ID, as sent in CHECK.
	Gate [cardkeys.GateIDSize]byte
	// Time is the check time, the gate's local time, as sent in CHECK.
	Time ticketfmt.DateTime
	// Nonce is the CHECK nonce.
	Nonce [cardkeys.NonceSize]byte
	// Receipt is the card's receipt, ReceiptSize bytes (raw r‖s).
	Receipt []byte
}

// SameCheck reports whether r and o are the same check: network.md
// identifies a check by ticket ID, serial, gate ID and time.
func (r Record) SameCheck(o Record) bool {
	return r.TicketID == o.TicketID && r.Serial == o.Serial && r.Gate == o.Gate && r.Time == o.Time
}

// validate checks what the file format requires of a record.
func (r Record) validate() error {
	if !r.Time.Valid() {
		return fmt.Errorf("%w record: check time %v: no such date and time", ErrInvalid, r.Time)
	}
	if len(r.Receipt) != ReceiptSize {
		return fmt.Errorf("%w record: receipt of %d bytes, want %d", ErrInvalid, len(r.Receipt), ReceiptSize)
	}
	return nil
}

// clone returns r with its own copy of Receipt.
func (r Record) clone() Record {
	r.Receipt = append([]byte(nil), r.Receipt...)
	return r
}

// Journal is an open, locked journal file. It holds the lock from Open
// until Close. Its methods are safe for concurrent use.
type Journal struct {
	path string

	mu        sync.Mutex
	f         *os.File // nil once closed; holds the lock
	size      int64    // where the next frame goes
	checks    []Record
	ids       map[ticketfmt.ID]int
	uploaded  int
	truncated int64
	broken    error
}

// Open opens the journal at path, creating an empty one if nothing is
// there (its directory must exist), and locks it. The lock is exclusive and
// taken without waiting: if the journal is open elsewhere, Open returns an
// error wrapping ErrLocked.
//
// Open reads and verifies every record. A torn last append (a crash in the
// middle of it) is cut off, and Truncated says how many bytes went; any
// other damage is refused with an error wrapping ErrCorrupt, and a file
// that is no journal, or of another version, with ErrNotJournal or
// ErrVersion. Nothing is changed then.
//
// Since a missing journal is created, a wrong path (a data disk not
// mounted on the usual directory) gives an empty journal, and the gate
// forgets the tickets it admitted until their upload puts them on the deny
// list: a gate should open its journal at a fixed, checked path.
func Open(path string) (*Journal, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	j, err := load(path, f)
	if err != nil {
		f.Close() // also releases the lock
		return nil, err
	}
	durable.RemoveStrayTemps(path)
	return j, nil
}

// openFile opens the journal file at path for reading and writing and
// locks it, creating it first if it does not exist.
func openFile(path string) (*os.File, error) {
	// O_NONBLOCK keeps a FIFO at path from blocking the open; it changes
	// nothing for a regular file.
	const flags = os.O_RDWR | syscall.O_NONBLOCK
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		errCreate := create(path)
		f, err = os.OpenFile(path, flags, 0)
		if err != nil && errCreate != nil {
			// Had another Open created it meanwhile, opening would
			// have worked.
			return nil, fmt.Errorf("journal %s: cannot create: %w", path, errCreate)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("journal %s: cannot open: %w", path, durable.Bare(err))
	}
	if err := durable.Flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("journal %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("journal %s: cannot lock: %w", path, err)
	}
	return f, nil
}

// load reads the locked file f whole, verifies it, cuts off a torn last
// append, and returns the Journal.
func load(path string, f *os.File) (*Journal, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("journal %s: cannot read: %w", path, durable.Bare(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("journal %s: %w: not a regular file", path, ErrNotJournal)
	}
	// The magic first, so that a large file that is no journal (a wrong
	// path) is not read whole.
	data := make([]byte, min(st.Size(), int64(len(magic))))
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, st.Size()), data); err != nil {
		return nil, fmt.Errorf("journal %s: cannot read: %w", path, durable.Bare(err))
	}
	if string(data) == magic {
		data = make([]byte, st.Size())
		if _, err := io.ReadFull(io.NewSectionReader(f, 0, st.Size()), data); err != nil {
			return nil, fmt.Errorf("journal %s: cannot read: %w", path, durable.Bare(err))
		}
	}
	c, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	j := &Journal{path: path, f: f, size: int64(c.valid), checks: c.checks, ids: c.ids, uploaded: c.uploaded}
	if c.valid < len(data) {
		// Cut the torn append off before anything is appended after it,
		// and make the cut durable.
		if err := f.Truncate(int64(c.valid)); err != nil {
			return nil, fmt.Errorf("journal %s: cannot cut off a torn last record: %w", path, durable.Bare(err))
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("journal %s: cannot cut off a torn last record: %w", path, durable.Bare(err))
		}
		j.truncated = int64(len(data) - c.valid)
	}
	return j, nil
}

// Path returns the journal's path as given to Open.
func (j *Journal) Path() string { return j.path }

// Truncated returns how many bytes of a torn last append Open cut off (0
// for a journal closed cleanly), for the gate to log.
func (j *Journal) Truncated() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.truncated
}

// Append adds a check to the journal and returns once it is on stable
// storage. A record already in the journal (the same ticket ID, serial,
// gate ID and time) is not added again and Append returns nil; another
// check of a ticket in the journal fails with ErrDuplicate. A record with
// an impossible time or a receipt of the wrong size fails with ErrInvalid.
// Append after Close fails with an error wrapping fs.ErrClosed.
func (j *Journal) Append(r Record) error {
	if err := r.validate(); err != nil {
		return fmt.Errorf("journal %s: cannot append: %w", j.path, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.writable(); err != nil {
		return err
	}
	if i, ok := j.ids[r.TicketID]; ok {
		if j.checks[i].SameCheck(r) {
			return nil
		}
		return fmt.Errorf("journal %s: cannot append: %w: %v (check %d)", j.path, ErrDuplicate, r.TicketID, i+1)
	}
	if err := j.write(checkFrame(r)); err != nil {
		return fmt.Errorf("journal %s: cannot append: %w", j.path, err)
	}
	j.ids[r.TicketID] = len(j.checks)
	j.checks = append(j.checks, r.clone())
	return nil
}

// Has reports whether the ticket is in the journal. After Close it
// answers from the journal as it was.
func (j *Journal) Has(id ticketfmt.ID) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.ids[id]
	return ok
}

// Len returns the number of records in the journal.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.checks)
}

// Records returns every record, oldest first. The caller owns the slice
// and the receipts.
func (j *Journal) Records() []Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return cloneAll(j.checks)
}

// Pending returns the records the server has not acknowledged yet, oldest
// first. The caller owns the slice and the receipts.
func (j *Journal) Pending() []Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return cloneAll(j.checks[j.uploaded:])
}

// pending returns at most max pending records and the index of the first.
func (j *Journal) pending(max int) (int, []Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.checks[j.uploaded:]
	return j.uploaded, cloneAll(p[:min(len(p), max)])
}

// MarkUploaded records, on stable storage, that the server acknowledged
// the first n pending records: Pending no longer returns them. n beyond
// the pending records fails with ErrInvalid; 0 does nothing.
func (j *Journal) MarkUploaded(n int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.writable(); err != nil {
		return err
	}
	if n < 0 || n > len(j.checks)-j.uploaded {
		return fmt.Errorf("journal %s: cannot mark %d records uploaded: %w count (%d pending)", j.path, n, ErrInvalid, len(j.checks)-j.uploaded)
	}
	return j.markThrough(j.uploaded + n)
}

// markUploadedThrough records that the server acknowledged the first end
// records of the journal. Unlike MarkUploaded it is idempotent, so that
// two uploads running at once never mark records neither sent.
func (j *Journal) markUploadedThrough(end int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.writable(); err != nil {
		return err
	}
	return j.markThrough(end)
}

// markThrough writes an upload mark for the first end records, if that
// acknowledges more than is already. The caller holds j.mu and has checked
// that j is writable.
func (j *Journal) markThrough(end int) error {
	if end <= j.uploaded {
		return nil
	}
	if end > len(j.checks) {
		return fmt.Errorf("journal %s: cannot mark %d records uploaded: %w count (%d records)", j.path, end, ErrInvalid, len(j.checks))
	}
	if err := j.write(markFrame(uint64(end))); err != nil {
		return fmt.Errorf("journal %s: cannot mark records uploaded: %w", j.path, err)
	}
	j.uploaded = end
	return nil
}

// Close releases the lock. Closing a closed Journal does nothing and
// returns nil. Everything Append and MarkUploaded acknowledged is already
// on stable storage.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	if err != nil {
		return fmt.Errorf("journal %s: cannot close: %w", j.path, durable.Bare(err))
	}
	return nil
}

// writable returns why nothing can be written to j, if anything. The
// caller holds j.mu.
func (j *Journal) writable() error {
	if j.f == nil {
		return fmt.Errorf("journal %s: %w", j.path, fs.ErrClosed)
	}
	if j.broken != nil {
		return fmt.Errorf("journal %s: %w (%v)", j.path, ErrBroken, j.broken)
	}
	return nil
}

// write appends one frame at the end of the valid part and syncs it. A
// failed write is undone by cutting the file back; if that fails too, or
// the sync fails (after which the system may have dropped the data without
// a trace), the journal is broken: what is on disk is no longer known, and
// only reopening it tells. The caller holds j.mu.
func (j *Journal) write(frame []byte) error {
	if _, err := j.f.WriteAt(frame, j.size); err != nil {
		err = durable.Bare(err)
		if errCut := j.f.Truncate(j.size); errCut != nil {
			j.broken = err
			return fmt.Errorf("%w (and cannot undo it: %v)", err, durable.Bare(errCut))
		}
		return err
	}
	if err := j.f.Sync(); err != nil {
		j.broken = durable.Bare(err)
		return fmt.Errorf("%w: sync: %w", ErrBroken, durable.Bare(err))
	}
	j.size += int64(len(frame))
	return nil
}

func cloneAll(rs []Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		out[i] = r.clone()
	}
	return out
}
