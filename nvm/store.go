package nvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrNoImage means a memory with no valid meta page: never formatted, or
// damaged beyond the last commit.
var ErrNoImage = errors.New("nvm: no valid image in memory")

// Store keeps a logical image of fixed length in a Memory and replaces it
// atomically: a power cut at any page write leaves either the old image or
// the new one.
//
// The design is bbolt's, at the scale of a card: the image is split into
// logical pages; a page table maps each to a physical page; a commit writes
// the changed logical pages to free physical pages (copy on write), then
// writes the new page table to the older of two meta pages with a higher
// sequence number and a CRC. Until that single page write completes the
// previous meta page is the valid one and every page it names is untouched.
//
// Physical layout: pages 0 and 1 are meta pages, then 2×L data pages for L
// logical pages, so that even a commit that changes every page finds room.
//
// Meta page: "NV" | version 1 | entry size (1 or 2) | sequence (4) |
// image length (4) | logical pages (2) | table (L entries) | CRC-32C of all
// that (4), big-endian, the rest of the page unused.
type Store struct {
	mem      Memory
	pageSize int
	imageLen int
	table    []int // logical page -> physical page
	seq      uint32
	slot     int // meta page holding the current state
	image    []byte
	buf      []byte
}

const (
	metaHeader  = 14
	metaVersion = 1
	metaPages   = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Layout returns the page size and page count of a memory that holds an
// image of imageLen bytes: the smallest power-of-two page size from 64
// bytes at which the meta page fits in one page.
func Layout(imageLen int) (pageSize, pages int) {
	for pageSize = 64; ; pageSize *= 2 {
		l := (imageLen + pageSize - 1) / pageSize
		if metaHeader+l*entrySize(l)+4 <= pageSize {
			return pageSize, metaPages + 2*l
		}
	}
}

// entrySize is the size of a page table entry for l logical pages.
func entrySize(l int) int {
	if metaPages+2*l <= 256 {
		return 1
	}
	return 2
}

// Format writes image to mem as its first state and returns the Store. The
// memory must have the size Layout gives for len(image).
func Format(mem Memory, image []byte) (*Store, error) {
	ps, pages := Layout(len(image))
	if mem.PageSize() != ps || mem.Pages() != pages {
		return nil, fmt.Errorf("nvm: a %d-byte image needs %d pages of %d bytes, memory has %d of %d",
			len(image), pages, ps, mem.Pages(), mem.PageSize())
	}
	l := (len(image) + ps - 1) / ps
	s := &Store{mem: mem, pageSize: ps, imageLen: len(image), table: make([]int, l), slot: 1,
		image: make([]byte, l*ps), buf: make([]byte, ps)}
	for i := range s.table {
		s.table[i] = -1
	}
	// Invalidate both meta pages first, so a torn format is never an image.
	for m := range metaPages {
		if err := mem.WritePage(m, make([]byte, ps)); err != nil {
			return nil, err
		}
	}
	// Every table entry is -1, so the first commit writes every page.
	if err := s.Commit(image); err != nil {
		return nil, err
	}
	return s, nil
}

// Open finds the last committed image in mem.
func Open(mem Memory) (*Store, error) {
	ps := mem.PageSize()
	var best *Store
	for m := range metaPages {
		s, err := readMeta(mem, m)
		if err != nil {
			if errors.Is(err, ErrPowerLost) || errors.Is(err, ErrRange) {
				return nil, err
			}
			continue
		}
		if best == nil || s.seq > best.seq {
			best = s
		}
	}
	if best == nil {
		return nil, ErrNoImage
	}
	best.image = make([]byte, len(best.table)*ps)
	best.buf = make([]byte, ps)
	for i, p := range best.table {
		if err := mem.ReadPage(p, best.image[i*ps:(i+1)*ps]); err != nil {
			return nil, err
		}
	}
	return best, nil
}

func readMeta(mem Memory, slot int) (*Store, error) {
	ps := mem.PageSize()
	page := make([]byte, ps)
	if err := mem.ReadPage(slot, page); err != nil {
		return nil, err
	}
	if page[0] != 'N' || page[1] != 'V' || page[2] != metaVersion {
		return nil, ErrNoImage
	}
	es := int(page[3])
	seq := binary.BigEndian.Uint32(page[4:])
	imageLen := int(binary.BigEndian.Uint32(page[8:]))
	l := int(binary.BigEndian.Uint16(page[12:]))
	end := metaHeader + l*es
	if (es != 1 && es != 2) || l == 0 || end+4 > ps || imageLen > l*ps || imageLen <= (l-1)*ps ||
		metaPages+2*l != mem.Pages() || es != entrySize(l) {
		return nil, ErrNoImage
	}
	if crc32.Checksum(page[:end], castagnoli) != binary.BigEndian.Uint32(page[end:]) {
		return nil, ErrNoImage
	}
	s := &Store{mem: mem, pageSize: ps, imageLen: imageLen, table: make([]int, l), seq: seq, slot: slot}
	used := make([]bool, mem.Pages())
	for i := range s.table {
		p := int(page[metaHeader+i*es])
		if es == 2 {
			p = int(binary.BigEndian.Uint16(page[metaHeader+i*es:]))
		}
		if p < metaPages || p >= mem.Pages() || used[p] {
			return nil, ErrNoImage
		}
		used[p] = true
		s.table[i] = p
	}
	return s, nil
}

// Image returns the current image. It aliases the Store's cache: do not
// modify it.
func (s *Store) Image() []byte { return s.image[:s.imageLen] }

// Len is the image length in bytes.
func (s *Store) Len() int { return s.imageLen }

// Commit replaces the image with next (same length) atomically. Only the
// pages that change are written, then one meta page; a commit that changes
// nothing writes nothing. On any error the Store keeps the old image; after
// ErrPowerLost the Store must not be used again (Open the memory anew once
// the power is back).
func (s *Store) Commit(next []byte) error {
	if len(next) != s.imageLen {
		return fmt.Errorf("nvm: image of %d bytes, store holds %d", len(next), s.imageLen)
	}
	ps := s.pageSize
	inUse := make([]bool, s.mem.Pages())
	for _, p := range s.table {
		if p >= 0 {
			inUse[p] = true
		}
	}
	newTable := append([]int(nil), s.table...)
	free := metaPages
	changed := false
	for i := range s.table {
		lo, hi := i*ps, min((i+1)*ps, s.imageLen)
		if s.table[i] >= 0 && bytes.Equal(s.image[lo:hi], next[lo:hi]) {
			continue
		}
		for inUse[free] {
			free++
		}
		inUse[free] = true
		clear(s.buf)
		copy(s.buf, next[lo:hi])
		if err := s.mem.WritePage(free, s.buf); err != nil {
			return err
		}
		newTable[i] = free
		changed = true
	}
	if !changed {
		return nil
	}
	slot := 1 - s.slot
	if err := s.mem.WritePage(slot, s.meta(newTable, s.seq+1)); err != nil {
		return err
	}
	s.table, s.seq, s.slot = newTable, s.seq+1, slot
	copy(s.image, next)
	return nil
}

func (s *Store) meta(table []int, seq uint32) []byte {
	page := make([]byte, s.pageSize)
	l := len(table)
	es := entrySize(l)
	page[0], page[1], page[2], page[3] = 'N', 'V', metaVersion, byte(es)
	binary.BigEndian.PutUint32(page[4:], seq)
	binary.BigEndian.PutUint32(page[8:], uint32(s.imageLen))
	binary.BigEndian.PutUint16(page[12:], uint16(l))
	for i, p := range table {
		if es == 1 {
			page[metaHeader+i] = byte(p)
		} else {
			binary.BigEndian.PutUint16(page[metaHeader+2*i:], uint16(p))
		}
	}
	end := metaHeader + l*es
	binary.BigEndian.PutUint32(page[end:], crc32.Checksum(page[:end], castagnoli))
	return page
}
