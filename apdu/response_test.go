package apdu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseResponse(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want Response
	}{
		{"SW only", h("90 00"), Response{SW: SWSuccess}},
		{"data", h("01 02 03 90 00"), Response{Data: h("01 02 03"), SW: SWSuccess}},
		{"more data", h("AA 61 10"), Response{Data: h("AA"), SW: 0x6110}},
		{"notification", h("91 2D"), Response{SW: 0x912D}},
		{"error", h("6A 82"), Response{SW: SWFileNotFound}},
		{"256 bytes", cat(pattern(256), h("90 00")), Response{Data: pattern(256), SW: SWSuccess}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseResponse(tt.b)
			require.NoError(t, err)
			assert.Equal(t, tt.want, r)
			assert.Equal(t, tt.b, r.Bytes())
			assert.Equal(t, cat(h("EE"), tt.b), r.AppendBytes(h("EE")))
		})
	}
}

func TestParseResponseMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, {}, {0x90}} {
		_, err := ParseResponse(b)
		require.ErrorIs(t, err, ErrMalformed, "% X", b)
		assert.Contains(t, err.Error(), "shorter than a status word")
	}
}

func TestParseResponseAliasing(t *testing.T) {
	b := h("01 02 90 00")
	r, err := ParseResponse(b)
	require.NoError(t, err)
	_ = append(r.Data, 0xFF)
	assert.Equal(t, h("90 00"), b[2:], "appending to Data must not overwrite the status word")
}

func TestResponseErr(t *testing.T) {
	assert.NoError(t, Response{SW: SWSuccess}.Err())
	assert.NoError(t, Response{Data: h("01"), SW: 0x9105}.Err())
	err := Response{SW: SWFileNotFound}.Err()
	assert.ErrorIs(t, err, ErrNotFound)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, SWFileNotFound, e.SW)
	assert.Error(t, Response{SW: 0x6110}.Err(), "61xx is not a final answer")
}

func TestResponseString(t *testing.T) {
	assert.Equal(t, "9000 (success)", Response{SW: SWSuccess}.String())
	assert.Equal(t, "6F 02 84 00 9000 (success)", Response{Data: h("6F 02 84 00"), SW: SWSuccess}.String())
}
