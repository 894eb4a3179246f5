package imagefile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
)

// The image file format, version 1. All integers are big-endian.
//
//	offset  size  field
//	     0     8  magic "SIMTIXNV"
//	     8     2  format version (1)
//	    10     2  flags (0; any other value is refused)
//	    12     4  page size in bytes (16..65536)
//	    16     4  memory length in bytes (> 0, a multiple of the page size)
//	    20     2  label length in bytes (0..256)
//	    22     L  label
//	  22+L     M  memory
//	22+L+M    32  SHA-256 of every byte before it
//
// A file is loaded only if it is exactly 22+L+M+32 bytes long and every
// check passes; see decode for the order of the checks.
const (
	magic         = "SIMTIXNV"
	formatVersion = 1
	headerSize    = 22
	sumSize       = sha256.Size

	// maxFileSize is the size of the largest file the format can describe.
	maxFileSize = headerSize + MaxLabel + math.MaxUint32 + sumSize
)

// Limits of an Image.
const (
	// MinPageSize is the smallest Image.PageSize.
	MinPageSize = 16
	// MaxPageSize is the largest Image.PageSize.
	MaxPageSize = 65536
	// MaxLabel is the longest Image.Label, in bytes.
	MaxLabel = 256
)

// checkShape returns why an image with these sizes cannot be stored, or ""
// if it can. Create, Save and decode share it so that whatever is saved
// loads again.
func checkShape(pageSize, memLen, labelLen uint64) string {
	switch {
	case pageSize < MinPageSize || pageSize > MaxPageSize:
		return fmt.Sprintf("page size %d is outside %d..%d", pageSize, MinPageSize, MaxPageSize)
	case memLen == 0:
		return "the memory is empty"
	case memLen > math.MaxUint32:
		return fmt.Sprintf("memory of %d bytes is over the format's limit of %d", memLen, uint64(math.MaxUint32))
	case memLen%pageSize != 0:
		return fmt.Sprintf("memory length %d is not a multiple of the page size %d", memLen, pageSize)
	case labelLen > MaxLabel:
		return fmt.Sprintf("label of %d bytes is over the limit of %d", labelLen, MaxLabel)
	}
	return ""
}

// validate checks that img can be encoded.
func validate(img Image) error {
	if img.PageSize <= 0 {
		return fmt.Errorf("%w: page size %d is outside %d..%d", ErrInvalid, img.PageSize, MinPageSize, MaxPageSize)
	}
	if why := checkShape(uint64(img.PageSize), uint64(len(img.Memory)), uint64(len(img.Label))); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, why)
	}
	return nil
}

// encodedSize is the size of img's file.
func encodedSize(img Image) int {
	return headerSize + len(img.Label) + len(img.Memory) + sumSize
}

// encode returns img's file. img must have passed validate.
func encode(img Image) []byte {
	return appendImage(make([]byte, 0, encodedSize(img)), img)
}

// appendImage appends img's file to dst and returns the extended slice;
// with enough capacity in dst it allocates nothing. img must have passed
// validate.
func appendImage(dst []byte, img Image) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint16(dst, formatVersion)
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(img.PageSize))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(img.Memory)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(img.Label)))
	dst = append(dst, img.Label...)
	dst = append(dst, img.Memory...)
	sum := sha256.Sum256(dst[start:])
	return append(dst, sum[:]...)
}

// decode checks data and returns the image it holds. The returned Memory
// aliases data. On error the Image is always zero. The checks, in order:
// the file holds at least a header (else ErrNotImage when it cannot even
// hold the magic, ErrCorrupt when it is a cut-off image); the magic
// (ErrNotImage); the version (ErrVersion when newer than this package
// reads, ErrCorrupt for 0); the flags (ErrCorrupt); the file size against
// the lengths in the header (ErrCorrupt: truncated or trailing bytes); the
// page size, memory and label lengths (ErrCorrupt); the checksum
// (ErrCorrupt).
func decode(data []byte) (Image, error) {
	if len(data) == 0 {
		return Image{}, fmt.Errorf("%w: the file is empty", ErrNotImage)
	}
	// A file shorter than the magic but matching its start is a cut-off
	// image, not some other file.
	if !bytes.HasPrefix(data, []byte(magic)) && !bytes.HasPrefix([]byte(magic), data) {
		return Image{}, fmt.Errorf("%w: no %q magic at the start", ErrNotImage, magic)
	}
	if len(data) < headerSize+sumSize {
		return Image{}, fmt.Errorf("%w: truncated: %d bytes, less than the %d of a header and checksum",
			ErrCorrupt, len(data), headerSize+sumSize)
	}
	version := binary.BigEndian.Uint16(data[8:])
	if version > formatVersion {
		return Image{}, fmt.Errorf("%w %d: this simtix reads versions up to %d (was the image made by a newer simtix?)",
			ErrVersion, version, formatVersion)
	}
	if version == 0 {
		return Image{}, fmt.Errorf("%w: format version 0 does not exist", ErrCorrupt)
	}
	if flags := binary.BigEndian.Uint16(data[10:]); flags != 0 {
		return Image{}, fmt.Errorf("%w: unknown flags %#04x", ErrCorrupt, flags)
	}
	pageSize := uint64(binary.BigEndian.Uint32(data[12:]))
	memLen := uint64(binary.BigEndian.Uint32(data[16:]))
	labelLen := uint64(binary.BigEndian.Uint16(data[20:]))
	want := headerSize + labelLen + memLen + sumSize
	switch have := uint64(len(data)); {
	case have < want:
		return Image{}, fmt.Errorf("%w: truncated: %d bytes where the header announces %d", ErrCorrupt, have, want)
	case have > want:
		return Image{}, fmt.Errorf("%w: %d trailing bytes after the %d the header announces", ErrCorrupt, have-want, want)
	}
	if why := checkShape(pageSize, memLen, labelLen); why != "" {
		return Image{}, fmt.Errorf("%w: %s", ErrCorrupt, why)
	}
	body := data[:len(data)-sumSize]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], data[len(body):]) {
		return Image{}, fmt.Errorf("%w: checksum mismatch (the file was changed or truncated outside simtix)", ErrCorrupt)
	}
	label := body[headerSize : headerSize+labelLen]
	return Image{
		PageSize: int(pageSize),
		Memory:   body[headerSize+labelLen:],
		Label:    string(label),
	}, nil
}
