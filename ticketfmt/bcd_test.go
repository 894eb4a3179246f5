package ticketfmt

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDateBCD(t *testing.T) {
	tests := []struct {
		bcd  []byte
		date Date
	}{
		{[]byte{0x20, 0x26, 0x12, 0x05}, Date{2026, 12, 5}},
		{[]byte{0x20, 0x24, 0x02, 0x29}, Date{2024, 2, 29}},
		{[]byte{0x20, 0x00, 0x02, 0x29}, Date{2000, 2, 29}},
		{[]byte{0x99, 0x99, 0x12, 0x31}, Date{9999, 12, 31}},
	}
	for _, tc := range tests {
		got, err := DecodeDate(tc.bcd)
		require.NoError(t, err, "%X", tc.bcd)
		assert.Equal(t, tc.date, got)
		assert.Equal(t, tc.bcd, tc.date.AppendBCD(nil))
	}
	for _, bad := range [][]byte{
		{0x21, 0x00, 0x02, 0x29}, // 2100 is not a leap year
		{0x20, 0x26, 0x02, 0x29},
		{0x20, 0x26, 0x04, 0x31},
		{0x20, 0x26, 0x00, 0x01},
		{0x20, 0x26, 0x01, 0x00},
		{0x20, 0x26, 0x01, 0x32},
	} {
		_, err := DecodeDate(bad)
		assert.ErrorIs(t, err, ErrNoSuchDate, "%X", bad)
	}
	_, err := DecodeDate([]byte{0x20, 0x2A, 0x01, 0x01})
	assert.ErrorIs(t, err, ErrBCD)
	_, err = DecodeDate([]byte{0x20, 0x26, 0x01})
	assert.ErrorIs(t, err, ErrSize)
}

func TestTimeBCD(t *testing.T) {
	got, err := DecodeTimeOfDay([]byte{0x23, 0x59})
	require.NoError(t, err)
	assert.Equal(t, TimeOfDay{23, 59}, got)
	got, err = DecodeTimeOfDay([]byte{0x00, 0x00})
	require.NoError(t, err)
	assert.Equal(t, TimeOfDay{0, 0}, got)
	for _, bad := range [][]byte{{0x24, 0x00}, {0x12, 0x60}, {0x24, 0x61}} {
		_, err := DecodeTimeOfDay(bad)
		assert.ErrorIs(t, err, ErrNoSuchDate, "%X", bad)
	}
	_, err = DecodeTimeOfDay([]byte{0x1A, 0x00})
	assert.ErrorIs(t, err, ErrBCD)

	dt, err := DecodeDateTime([]byte{0x20, 0x26, 0x12, 0x05, 0x19, 0x15, 0x00})
	require.NoError(t, err)
	assert.Equal(t, DateTime{Date{2026, 12, 5}, 19, 15, 0}, dt)
	assert.Equal(t, "2026-12-05T19:15:00", dt.String())
	assert.Equal(t, []byte{0x20, 0x26, 0x12, 0x05, 0x19, 0x15, 0x00}, dt.AppendBCD(nil))
	_, err = DecodeDateTime([]byte{0x20, 0x26, 0x12, 0x05, 0x19, 0x15, 0x60})
	assert.ErrorIs(t, err, ErrNoSuchDate, "second 60")
	_, err = DecodeDateTime([]byte{0x20, 0x26, 0x02, 0x30, 0x19, 0x15, 0x00})
	assert.ErrorIs(t, err, ErrNoSuchDate)
}

func TestDateText(t *testing.T) {
	var v struct {
		D Date      `json:"d"`
		T TimeOfDay `json:"t"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"d":"2026-12-05","t":"07:05"}`), &v))
	assert.Equal(t, Date{2026, 12, 5}, v.D)
	assert.Equal(t, TimeOfDay{7, 5}, v.T)
	out, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, `{"d":"2026-12-05","t":"07:05"}`, string(out))

	assert.Error(t, json.Unmarshal([]byte(`{"d":"2026-02-30"}`), &v))
	assert.Error(t, json.Unmarshal([]byte(`{"t":"24:00"}`), &v))
	assert.Error(t, json.Unmarshal([]byte(`{"d":"2026/12/05"}`), &v))
}

func TestDateCompareAndIn(t *testing.T) {
	a, b := Date{2026, 12, 5}, Date{2026, 12, 6}
	assert.Equal(t, -1, a.Compare(b))
	assert.Equal(t, 1, b.Compare(a))
	assert.Equal(t, 0, a.Compare(a))
	assert.Equal(t, -1, TimeOfDay{7, 0}.Compare(TimeOfDay{19, 30}))
	loc := time.FixedZone("CST", 8*3600)
	at := a.In(TimeOfDay{19, 30}, loc)
	assert.Equal(t, "2026-12-05T19:30:00+08:00", at.Format(time.RFC3339))
	assert.Equal(t, a, DateOf(at))
}

func TestCompareUse(t *testing.T) {
	d := Date{Year: 2026, Month: 12, Day: 5}
	next := Date{Year: 2026, Month: 12, Day: 6}
	early, late := TimeOfDay{Hour: 7}, TimeOfDay{Hour: 21, Minute: 10}
	assert.Equal(t, -1, CompareUse(d, late, next, early), "the date first")
	assert.Equal(t, 1, CompareUse(next, early, d, late))
	assert.Equal(t, -1, CompareUse(d, early, d, late), "then the time")
	assert.Equal(t, 0, CompareUse(d, late, d, late))
}
