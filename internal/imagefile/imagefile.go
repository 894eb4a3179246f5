// Package imagefile keeps a card's NVM in one file: versioned, checksummed,
// saved atomically, locked while in use. It knows nothing of what the memory holds.
//
// # File format
//
// Version 1, all integers big-endian:
//
//	magic "SIMTIXNV"         8 bytes
//	format version (1)       uint16
//	flags (0)                uint16
//	page size (16..65536)    uint32
//	memory length M          uint32  (> 0, a multiple of the page size)
//	label length L (0..256)  uint16
//	label                    L bytes
//	memory                   M bytes
//	SHA-256 of all the above 32 bytes
//
// A file is loaded only whole: its size must be exactly what the header
// announces and the checksum must match, or loading fails with ErrNotImage,
// ErrVersion or ErrCorrupt and no Image.
//
// # Files next to the image
//
// An image at P is locked through the sidecar file P + ".lock" (flock(2),
// exclusive), which exists only while the image is open. New versions are
// written to a temporary file ".<name>.tmp-<16 hex digits>" in the image's
// directory and renamed over the image; a crash can leave such a file
// behind, and Open removes it.
package imagefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/simtix/simtix/internal/durable"
)

// Image is what an image file holds.
type Image struct {
	// PageSize is the number of bytes per NVM page, MinPageSize..MaxPageSize.
	PageSize int
	// Memory is the whole NVM; its length is a positive multiple of
	// PageSize.
	Memory []byte
	// Label is free text for people (e.g. "simtix card 8986..."), at most
	// MaxLabel bytes.
	Label string
}

// Errors, each returned wrapped with the image's path and details, e.g.
// "card image /tmp/x.img: damaged: checksum mismatch (...)". Test for them
// with errors.Is.
var (
	// ErrExists is the cause when Create finds something at the path.
	ErrExists = errors.New("already exists")
	// ErrLocked is the cause when the image is open elsewhere: in another
	// process, or through another File of this one.
	ErrLocked = errors.New("in use: locked by another open of the image")
	// ErrCorrupt is the cause when a file starts like an image but is
	// damaged: truncated, extended, inconsistent or failing its checksum.
	ErrCorrupt = errors.New("damaged")
	// ErrVersion is the cause when an image has a newer format version
	// than this package reads.
	ErrVersion = errors.New("unsupported format version")
	// ErrNotImage is the cause when a file is not an image at all (no
	// magic).
	ErrNotImage = errors.New("not a simtix card image")
	// ErrInvalid is the cause when Create or Save is given an Image that
	// cannot be stored (page size, memory length or label length out of
	// bounds).
	ErrInvalid = errors.New("invalid image")
)

// File is an open, locked image file. It holds the lock from Open until
// Close. Its methods are safe for concurrent use.
type File struct {
	path   string // as given to Open, for messages
	target string // path with symbolic links resolved, for everything else

	mu     sync.Mutex
	lock   *lock // nil once closed
	noSync bool
	mode   fs.FileMode
	buf    []byte // the file's bytes as loaded or last saved
	img    Image  // decoded from buf; Memory aliases buf
	spare  []byte // reused by the next Save
}

// Create writes img to a new image file at path. It never replaces
// anything: if a file (or anything else) is at path it returns an error
// wrapping ErrExists and leaves it untouched. The file is written to a
// temporary file, synced and then linked into place, so a crash leaves
// either no image or a complete one. The image is created with mode 0600:
// it holds the card's secrets.
func Create(path string, img Image) (err error) {
	if err := validate(img); err != nil {
		return fmt.Errorf("card image %s: cannot create: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("card image %s: %w", path, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("card image %s: cannot create: %w", path, durable.Bare(err))
	}
	// Holding the lock while the temporary file exists keeps Open's clean-up
	// of stray temporary files away from it.
	l, err := acquireLock(path, path)
	if err != nil {
		return err
	}
	defer func() {
		if errRelease := l.release(); errRelease != nil && err == nil {
			err = fmt.Errorf("card image %s: created, but cannot release the lock: %w", path, errRelease)
		}
	}()
	published, err := writeAtomic(path, encode(img), 0o600, true, false)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("card image %s: %w", path, ErrExists)
	case err != nil && published:
		return fmt.Errorf("card image %s: created, but not made durable: %w", path, err)
	case err != nil:
		return fmt.Errorf("card image %s: cannot create: %w", path, err)
	}
	return nil
}

// Open locks the image file at path and loads it. The lock is exclusive
// and taken without waiting: if the image is open elsewhere, in another
// process or through another File of this process, Open returns an error
// wrapping ErrLocked. A file that fails the format's checks is refused
// with an error wrapping ErrNotImage, ErrVersion or ErrCorrupt. Open also
// removes temporary files left next to the image by an interrupted save.
// Saves are durable (synced) until SetSync(false).
//
// If path is a symbolic link, the File works on the file it leads to: that
// is what is locked and replaced by Save, and the link stays a link.
func Open(path string) (*File, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		target = path // readFile reports why
	}
	l, err := acquireLock(path, target)
	if err != nil {
		return nil, err
	}
	data, mode, err := readFile(path, target)
	if err == nil {
		var img Image
		if img, err = decode(data); err == nil {
			durable.RemoveStrayTemps(target)
			return &File{path: path, target: target, lock: l, mode: mode, buf: data, img: img}, nil
		}
		err = fmt.Errorf("card image %s: %w", path, err)
	}
	if errRelease := l.release(); errRelease != nil {
		err = errors.Join(err, fmt.Errorf("card image %s: cannot release the lock: %w", path, errRelease))
	}
	return nil, err
}

// Read loads and checks the image file at path without locking it, for
// tools that only look. If the image is being saved meanwhile, Read sees
// the previous or the next version, never a mix of both (saves replace the
// file by renaming a complete one over it). It fails as Open does, except
// that it never fails with ErrLocked.
func Read(path string) (Image, error) {
	data, _, err := readFile(path, path)
	if err != nil {
		return Image{}, err
	}
	img, err := decode(data)
	if err != nil {
		return Image{}, fmt.Errorf("card image %s: %w", path, err)
	}
	return img, nil
}

// Path returns the image's path as given to Open.
func (f *File) Path() string { return f.path }

// Image returns the image as loaded or last saved. Its Memory is a copy
// the caller owns. After Close it still returns the last image.
func (f *File) Image() Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := f.img
	img.Memory = append([]byte(nil), f.img.Memory...)
	return img
}

// SetSync chooses whether Save syncs the new file and its directory to
// stable storage (the default, true) or leaves that to the system (false:
// faster, for tests and benchmarks). Without syncing, a killed process
// still leaves the old or the new image, but a system crash or power loss
// may lose recent saves or leave a damaged image (which Open refuses).
func (f *File) SetSync(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noSync = !on
}

// Save replaces the image file's contents with img, atomically: img is
// written to a temporary file in the same directory, synced and renamed
// over the image, and the directory is synced, so that a crash at any
// point leaves the old or the new image, never a mix. The lock stays held.
// Save keeps the file's permission bits. img is not retained: the caller
// may change img.Memory as soon as Save returns. Save after Close fails
// with an error wrapping fs.ErrClosed; an invalid img fails with
// ErrInvalid and leaves the file as it was.
func (f *File) Save(img Image) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock == nil {
		return fmt.Errorf("card image %s: cannot save: %w", f.path, fs.ErrClosed)
	}
	if err := validate(img); err != nil {
		return fmt.Errorf("card image %s: cannot save: %w", f.path, err)
	}
	buf := appendImage(f.spare[:0], img)
	published, err := writeAtomic(f.target, buf, f.mode, !f.noSync, true)
	if !published {
		f.spare = buf
		return fmt.Errorf("card image %s: cannot save: %w", f.path, err)
	}
	memStart := headerSize + len(img.Label)
	f.spare, f.buf = f.buf, buf
	f.img = Image{PageSize: img.PageSize, Memory: buf[memStart : memStart+len(img.Memory)], Label: img.Label}
	if err != nil {
		return fmt.Errorf("card image %s: saved, but not made durable: %w", f.path, err)
	}
	return nil
}

// Close releases the lock. It does not save. Closing a closed File does
// nothing and returns nil.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock == nil {
		return nil
	}
	err := f.lock.release()
	f.lock, f.spare = nil, nil
	if err != nil {
		return fmt.Errorf("card image %s: cannot release the lock: %w", f.path, err)
	}
	return nil
}

// readFile reads the file at path whole and returns it with its permission
// bits. Errors name the image as name.
func readFile(name, path string) ([]byte, fs.FileMode, error) {
	// O_NONBLOCK keeps a FIFO at path from blocking the open; it changes
	// nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("card image %s: cannot open: %w", name, durable.Bare(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("card image %s: cannot read: %w", name, durable.Bare(err))
	}
	if !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("card image %s: %w: not a regular file", name, ErrNotImage)
	}
	if st.Size() > maxFileSize {
		return nil, 0, fmt.Errorf("card image %s: %w: %d bytes, more than any image", name, ErrNotImage, st.Size())
	}
	data := make([]byte, st.Size())
	n, err := io.ReadFull(f, data)
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, 0, fmt.Errorf("card image %s: cannot read: %w", name, durable.Bare(err))
	}
	// A short read (the file shrank under us, which simtix never does to a
	// file in place) is left for decode to refuse.
	return data[:n], st.Mode().Perm(), nil
}

// writeAtomic puts data at path through a temporary file in the same
// directory: written, synced (if sync), closed, then renamed over path
// (replace) or hard-linked to path, failing with an error wrapping
// fs.ErrExist if anything is there (!replace). Then the directory is synced
// (if sync). published reports whether data is now at path, even if err
// (from syncing the directory) is not nil. The temporary file never
// outlives writeAtomic, except in a crash.
func writeAtomic(path string, data []byte, mode fs.FileMode, sync, replace bool) (published bool, err error) {
	dir := filepath.Dir(path)
	tmp, tmpPath, err := durable.CreateTemp(dir, durable.TempPrefix(path))
	if err != nil {
		return false, err
	}
	linked := false
	defer func() {
		if !published || linked {
			os.Remove(tmpPath)
		}
	}()
	if mode != 0o600 {
		if err := tmp.Chmod(mode); err != nil {
			tmp.Close()
			return false, durable.Bare(err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, durable.Bare(err)
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return false, durable.Bare(err)
		}
	}
	if err := tmp.Close(); err != nil {
		return false, durable.Bare(err)
	}
	if replace {
		err = os.Rename(tmpPath, path)
	} else {
		err = os.Link(tmpPath, path)
		linked = err == nil
	}
	if err != nil {
		return false, durable.Bare(err)
	}
	if !sync {
		return true, nil
	}
	return true, durable.SyncDir(dir)
}
