// Package nvm models a smart card's non-volatile memory (fixed size, written
// a page at a time, counting its writes, with injectable faults) and keeps a
// logical image in it with atomic, copy-on-write commits.
//
// It knows nothing of what the image holds: the applet decides that.
package nvm

import (
	"errors"
	"fmt"
)

// Errors of memory access.
var (
	// ErrWriteFailed means a page write that failed and wrote nothing (the
	// emulator's injected fault; a real card answers 6400 or 6581).
	ErrWriteFailed = errors.New("nvm: write failed")
	// ErrPowerLost means the power was cut: the write in progress may be
	// torn, and the memory takes no further access until the card is
	// powered on again.
	ErrPowerLost = errors.New("nvm: power lost")
	// ErrRange means a page number or buffer outside the memory.
	ErrRange = errors.New("nvm: page out of range")
)

// Memory is a card's non-volatile memory: Pages pages of PageSize bytes,
// read and written a whole page at a time. A page write is the unit a power
// cut can tear.
type Memory interface {
	// PageSize is the size of a page in bytes.
	PageSize() int
	// Pages is the number of pages.
	Pages() int
	// ReadPage reads page i into p (len(p) == PageSize()).
	ReadPage(i int, p []byte) error
	// WritePage writes p (len(p) == PageSize()) to page i.
	WritePage(i int, p []byte) error
}

// Stats counts what a Memory has been asked to write.
type Stats struct {
	// PageWrites is the number of page writes.
	PageWrites int64
	// BytesWritten is PageWrites times the page size.
	BytesWritten int64
}

// Sub returns s - o, the writes between two readings.
func (s Stats) Sub(o Stats) Stats {
	return Stats{PageWrites: s.PageWrites - o.PageWrites, BytesWritten: s.BytesWritten - o.BytesWritten}
}

// RAM is a Memory held in a byte slice, counting its writes. The emulator
// saves its bytes to the card image file.
type RAM struct {
	pageSize int
	data     []byte
	stats    Stats
}

// NewRAM returns an erased memory (all bytes FF, as erased EEPROM and flash
// read) of pages pages of pageSize bytes.
func NewRAM(pageSize, pages int) *RAM {
	data := make([]byte, pageSize*pages)
	for i := range data {
		data[i] = 0xFF
	}
	return &RAM{pageSize: pageSize, data: data}
}

// RAMFromBytes returns a memory holding a copy of data, which must be a
// whole number of pages.
func RAMFromBytes(pageSize int, data []byte) (*RAM, error) {
	if pageSize <= 0 || len(data) == 0 || len(data)%pageSize != 0 {
		return nil, fmt.Errorf("nvm: %d bytes is not a whole number of %d-byte pages", len(data), pageSize)
	}
	return &RAM{pageSize: pageSize, data: append([]byte(nil), data...)}, nil
}

// PageSize implements Memory.
func (r *RAM) PageSize() int { return r.pageSize }

// Pages implements Memory.
func (r *RAM) Pages() int { return len(r.data) / r.pageSize }

// ReadPage implements Memory.
func (r *RAM) ReadPage(i int, p []byte) error {
	if err := r.check(i, p); err != nil {
		return err
	}
	copy(p, r.data[i*r.pageSize:])
	return nil
}

// WritePage implements Memory.
func (r *RAM) WritePage(i int, p []byte) error {
	if err := r.check(i, p); err != nil {
		return err
	}
	copy(r.data[i*r.pageSize:], p)
	r.stats.PageWrites++
	r.stats.BytesWritten += int64(len(p))
	return nil
}

// writePartial writes the first n bytes of p to page i: a torn write.
func (r *RAM) writePartial(i int, p []byte, n int) {
	copy(r.data[i*r.pageSize:], p[:n])
}

func (r *RAM) check(i int, p []byte) error {
	if i < 0 || i >= r.Pages() || len(p) != r.pageSize {
		return fmt.Errorf("%w: page %d of %d, buffer %d bytes", ErrRange, i, r.Pages(), len(p))
	}
	return nil
}

// Bytes returns the memory's contents. The slice aliases the memory: copy it
// before the next write if it must not change.
func (r *RAM) Bytes() []byte { return r.data }

// Stats returns the writes counted so far.
func (r *RAM) Stats() Stats { return r.stats }
