package apdu

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatusWordConstants checks the constants against the table of
// card-applet.md.
func TestStatusWordConstants(t *testing.T) {
	for _, tt := range []struct {
		sw   StatusWord
		want string
	}{
		{SWSuccess, "9000"},
		{SWWriteFailed, "6400"},
		{SWWrongLength, "6700"},
		{SWChannelNotSupported, "6881"},
		{SWLastCommandExpected, "6883"},
		{SWSecurityStatus, "6982"},
		{SWStaleAuthorization, "6984"},
		{SWConditionsNotSatisfied, "6985"},
		{SWNotSelected, "6986"},
		{SWWrongData, "6A80"},
		{SWFileNotFound, "6A82"},
		{SWNotEnoughMemory, "6A84"},
		{SWIncorrectP1P2, "6A86"},
		{SWReferenceNotFound, "6A88"},
		{SWAlreadyExists, "6A89"},
		{SWINSNotSupported, "6D00"},
		{SWCLANotSupported, "6E00"},
		{SWUnknown, "6F00"},
	} {
		assert.Equal(t, h(tt.want), []byte{tt.sw.SW1(), tt.sw.SW2()})
	}
}

func TestStatusWordString(t *testing.T) {
	for _, tt := range []struct {
		sw   StatusWord
		want string
	}{
		{0x9000, "9000 (success)"},
		{0x6A82, "6A82 (file or application not found)"},
		{0x6A84, "6A84 (not enough memory)"},
		{0x6A88, "6A88 (referenced data not found)"},
		{0x6984, "6984 (reference data not usable)"},
		{0x6986, "6986 (command not allowed (no current EF))"},
		{0x6110, "6110 (more data: 16 bytes)"},
		{0x6100, "6100 (more data: 256 bytes)"},
		{0x911A, "911A (normal ending, proactive command pending: 26 bytes)"},
		{0x63C2, "63C2 (warning, non-volatile memory changed: counter 2)"},
		{0x6C10, "6C10 (wrong Le: 16 bytes available)"},
		{0x6283, "6283 (selected file deactivated)"},
		{0x6299, "6299 (warning, non-volatile memory unchanged)"},
		{0x6410, "6410 (execution error, non-volatile memory unchanged: triggering by the card)"},
		{0x6581, "6581 (memory failure)"},
		{0x6612, "6612 (security-related issue)"},
		{0x6883, "6883 (last command of the chain expected)"},
		{0x6B00, "6B00 (wrong parameters P1-P2)"},
		{0x6D00, "6D00 (instruction code not supported or invalid)"},
		{0x6E00, "6E00 (class not supported)"},
		{0x6F00, "6F00 (no precise diagnosis)"},
		{0x1234, "1234 (unknown)"},
		{0x0000, "0000 (unknown)"},
	} {
		assert.Equal(t, tt.want, tt.sw.String())
		assert.Equal(t, tt.want, fmt.Sprint(tt.sw))
	}
}

func TestStatusWordOK(t *testing.T) {
	for _, sw := range []StatusWord{0x9000, 0x9100, 0x9101, 0x91FF} {
		assert.True(t, sw.OK(), "%04X", uint16(sw))
		assert.NoError(t, sw.Err())
	}
	for _, sw := range []StatusWord{0x6100, 0x6110, 0x6283, 0x63C1, 0x6A82, 0x6F00, 0x9001, 0x9200, 0x0000} {
		assert.False(t, sw.OK(), "%04X", uint16(sw))
		assert.Error(t, sw.Err())
	}
}

func TestStatusWordCounts(t *testing.T) {
	type count func(StatusWord) (int, bool)
	for _, tt := range []struct {
		name string
		f    count
		sw   StatusWord
		n    int
		ok   bool
	}{
		{"MoreData", StatusWord.MoreData, 0x6110, 16, true},
		{"MoreData", StatusWord.MoreData, 0x6101, 1, true},
		{"MoreData", StatusWord.MoreData, 0x61FF, 255, true},
		{"MoreData", StatusWord.MoreData, 0x6100, 256, true},
		{"MoreData", StatusWord.MoreData, 0x9000, 0, false},
		{"MoreData", StatusWord.MoreData, 0x6C10, 0, false},
		{"WrongLe", StatusWord.WrongLe, 0x6C05, 5, true},
		{"WrongLe", StatusWord.WrongLe, 0x6C00, 256, true},
		{"WrongLe", StatusWord.WrongLe, 0x6110, 0, false},
		{"Notification", StatusWord.Notification, 0x911A, 26, true},
		{"Notification", StatusWord.Notification, 0x9101, 1, true},
		{"Notification", StatusWord.Notification, 0x9000, 0, false},
		{"Notification", StatusWord.Notification, 0x6110, 0, false},
	} {
		n, ok := tt.f(tt.sw)
		assert.Equal(t, tt.ok, ok, "%s %04X", tt.name, uint16(tt.sw))
		assert.Equal(t, tt.n, n, "%s %04X", tt.name, uint16(tt.sw))
	}
}

func TestStatusBuilders(t *testing.T) {
	assert.Equal(t, StatusWord(0x6101), MoreDataStatus(1))
	assert.Equal(t, StatusWord(0x61FF), MoreDataStatus(255))
	assert.Equal(t, StatusWord(0x6100), MoreDataStatus(256))
	assert.Equal(t, StatusWord(0x6100), MoreDataStatus(70000))
	assert.Panics(t, func() { MoreDataStatus(0) })
	assert.Equal(t, StatusWord(0x9101), NotificationStatus(1))
	assert.Equal(t, StatusWord(0x912D), NotificationStatus(45))
	assert.Equal(t, StatusWord(0x9100), NotificationStatus(256))
	assert.Panics(t, func() { NotificationStatus(0) })
	assert.Panics(t, func() { NotificationStatus(257) })
}

var sentinels = []error{
	ErrNotFound, ErrNotEnoughMemory, ErrWriteFailed, ErrSecurityStatus,
	ErrStaleAuthorization, ErrConditionsOfUse, ErrNotSelected, ErrWrongData,
	ErrWrongLength, ErrWrongP1P2, ErrAlreadyExists, ErrINSNotSupported,
	ErrCLANotSupported, ErrChannelNotSupported, ErrChainingNotContinued,
	ErrInternal,
}

func TestErrorSentinels(t *testing.T) {
	for _, tt := range []struct {
		sw   StatusWord
		want error // nil: no sentinel
	}{
		{0x6A82, ErrNotFound},
		{0x6A88, ErrNotFound},
		{0x6A84, ErrNotEnoughMemory},
		{0x6400, ErrWriteFailed},
		{0x6581, ErrWriteFailed},
		{0x6982, ErrSecurityStatus},
		{0x6984, ErrStaleAuthorization},
		{0x6985, ErrConditionsOfUse},
		{0x6986, ErrNotSelected},
		{0x6A80, ErrWrongData},
		{0x6700, ErrWrongLength},
		{0x6C00, ErrWrongLength},
		{0x6C10, ErrWrongLength},
		{0x6A86, ErrWrongP1P2},
		{0x6B00, ErrWrongP1P2},
		{0x6A89, ErrAlreadyExists},
		{0x6D00, ErrINSNotSupported},
		{0x6E00, ErrCLANotSupported},
		{0x6881, ErrChannelNotSupported},
		{0x6883, ErrChainingNotContinued},
		{0x6F00, ErrInternal},
		{0x6100, nil},
		{0x6283, nil},
		{0x63C1, nil},
		{0x6A81, nil},
		{0x6A83, nil},
		{0x6882, nil},
		{0x6983, nil},
	} {
		t.Run(fmt.Sprintf("%04X", uint16(tt.sw)), func(t *testing.T) {
			err := Response{SW: tt.sw}.Err()
			require.Error(t, err)
			wrapped := fmt.Errorf("simtix: STORE: %w", err)
			for _, s := range sentinels {
				assert.Equal(t, s == tt.want, errors.Is(err, s), "errors.Is(%v, %v)", err, s)
				assert.Equal(t, s == tt.want, errors.Is(wrapped, s), "errors.Is(%v, %v)", wrapped, s)
			}
			var e *Error
			require.ErrorAs(t, wrapped, &e)
			assert.Equal(t, tt.sw, e.SW)
			assert.ErrorIs(t, wrapped, &Error{SW: tt.sw})
			assert.NotErrorIs(t, wrapped, &Error{SW: tt.sw + 1})
		})
	}
}

func TestErrorMessage(t *testing.T) {
	assert.EqualError(t, &Error{SW: SWNotEnoughMemory}, "apdu: 6A84 not enough memory")
	assert.EqualError(t, &Error{SW: SWFileNotFound, Op: "SELECT"}, "apdu: SELECT: 6A82 file or application not found")
	assert.EqualError(t, &Error{SW: 0x6C10}, "apdu: 6C10 wrong Le: 16 bytes available")
	assert.EqualError(t, &Error{SW: 0x1234}, "apdu: 1234 unknown")
}

func TestErrorIsOpAgnostic(t *testing.T) {
	err := &Error{SW: SWReferenceNotFound, Op: "DELETE"}
	assert.ErrorIs(t, err, &Error{SW: SWReferenceNotFound})
	assert.ErrorIs(t, err, ErrNotFound)
	assert.False(t, err.Is((*Error)(nil)))
	assert.False(t, err.Is(ErrInternal))
}
