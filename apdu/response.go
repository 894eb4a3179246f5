package apdu

import (
	"fmt"
)

// Response is a response APDU: data and the status word.
type Response struct {
	// Data is the response data; nil or empty for none.
	Data []byte
	// SW is the status word.
	SW StatusWord
}

// ParseResponse decodes a response APDU: data, then SW1 and SW2. It fails
// (wrapping ErrMalformed) for fewer than 2 bytes.
//
// The returned Data aliases b (with its capacity cut at its end, so that
// appending to it never overwrites the status word); copy it to keep it
// past a change of b.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, fmt.Errorf("%w: response of %d bytes, shorter than a status word", ErrMalformed, len(b))
	}
	n := len(b) - 2
	r := Response{SW: StatusWord(b[n])<<8 | StatusWord(b[n+1])}
	if n > 0 {
		r.Data = b[:n:n]
	}
	return r, nil
}

// Bytes codes the response: Data followed by SW1 and SW2.
func (r Response) Bytes() []byte {
	return r.AppendBytes(make([]byte, 0, len(r.Data)+2))
}

// AppendBytes appends the coded response to dst and returns the extended
// slice.
func (r Response) AppendBytes(dst []byte) []byte {
	dst = append(dst, r.Data...)
	return append(dst, r.SW.SW1(), r.SW.SW2())
}

// Err returns nil when r.SW is OK (9000 or 91xx), else an *Error carrying
// the status word.
func (r Response) Err() error {
	return r.SW.Err()
}

// String returns the response in readable hex, e.g. "6F 02 84 00 9000
// (success)".
func (r Response) String() string {
	if len(r.Data) == 0 {
		return r.SW.String()
	}
	return spacedHex(r.Data) + " " + r.SW.String()
}
