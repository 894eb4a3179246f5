package apdu

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseClassAll classifies every byte 00-FF by the ranges of
// card-applet.md and ISO/IEC 7816-4 §5.4.1, written with ranges and
// arithmetic rather than the bit masks of the code.
func TestParseClassAll(t *testing.T) {
	for i := 0; i <= 0xFF; i++ {
		cla := byte(i)
		t.Run(fmt.Sprintf("%02X", i), func(t *testing.T) {
			c, err := ParseClass(cla)
			switch {
			case i < 0x20, i >= 0x80 && i < 0xA0:
				require.NoError(t, err)
				want := KindFirstInterindustry
				if i >= 0x80 {
					want = KindProprietary
				}
				low := i % 0x20 // 000x xxxx
				assert.Equal(t, want, c.Kind)
				assert.Equal(t, low%4, c.Channel)
				assert.Equal(t, (low/4)%4, c.SecureMessaging)
				assert.Equal(t, low >= 0x10, c.Chaining)
			case i >= 0x40 && i < 0x80:
				require.NoError(t, err)
				low := i - 0x40 // 01xx xxxx
				assert.Equal(t, KindFurtherInterindustry, c.Kind)
				assert.Equal(t, 4+low%16, c.Channel)
				assert.Equal(t, (low/16)%2 == 1, c.Chaining)
				assert.Equal(t, low/32, c.SecureMessaging)
			default: // 20-3F, A0-FE, FF
				require.ErrorIs(t, err, ErrClassNotSupported)
				assert.Contains(t, err.Error(), fmt.Sprintf("CLA %02X", i))
				assert.Equal(t, Class{Kind: KindOther}, c)
			}
		})
	}
}

func TestParseClassExamples(t *testing.T) {
	for _, tt := range []struct {
		cla  byte
		want Class
	}{
		{0x00, Class{Kind: KindFirstInterindustry}},
		{0x03, Class{Kind: KindFirstInterindustry, Channel: 3}},
		{0x0C, Class{Kind: KindFirstInterindustry, SecureMessaging: 3}},
		{0x04, Class{Kind: KindFirstInterindustry, SecureMessaging: 1}},
		{0x10, Class{Kind: KindFirstInterindustry, Chaining: true}},
		{0x1F, Class{Kind: KindFirstInterindustry, Channel: 3, Chaining: true, SecureMessaging: 3}},
		{0x40, Class{Kind: KindFurtherInterindustry, Channel: 4}},
		{0x4F, Class{Kind: KindFurtherInterindustry, Channel: 19}},
		{0x50, Class{Kind: KindFurtherInterindustry, Channel: 4, Chaining: true}},
		{0x60, Class{Kind: KindFurtherInterindustry, Channel: 4, SecureMessaging: 1}},
		{0x7F, Class{Kind: KindFurtherInterindustry, Channel: 19, Chaining: true, SecureMessaging: 1}},
		{0x80, Class{Kind: KindProprietary}},
		{0x81, Class{Kind: KindProprietary, Channel: 1}},
		{0x84, Class{Kind: KindProprietary, SecureMessaging: 1}},
		{0x93, Class{Kind: KindProprietary, Channel: 3, Chaining: true}},
	} {
		c, err := ParseClass(tt.cla)
		require.NoError(t, err, "%02X", tt.cla)
		assert.Equal(t, tt.want, c, "%02X", tt.cla)
	}
	for _, cla := range []byte{0x20, 0x3F, 0xA0, 0xC0, 0xFE, 0xFF} {
		_, err := ParseClass(cla)
		assert.ErrorIs(t, err, ErrClassNotSupported, "%02X", cla)
	}
}

func TestClassKindString(t *testing.T) {
	assert.Equal(t, "first interindustry", KindFirstInterindustry.String())
	assert.Equal(t, "further interindustry", KindFurtherInterindustry.String())
	assert.Equal(t, "proprietary", KindProprietary.String())
	assert.Equal(t, "other", KindOther.String())
}

func TestWithChannel(t *testing.T) {
	for _, tt := range []struct {
		cla  byte
		ch   int
		want byte
	}{
		{0x00, 0, 0x00},
		{0x00, 1, 0x01},
		{0x80, 3, 0x83},
		{0x83, 0, 0x80},
		{0x92, 1, 0x91},  // chaining kept
		{0x0C, 2, 0x0E},  // secure messaging kept
		{0x00, 4, 0x40},  // to further interindustry
		{0x13, 19, 0x5F}, // chaining kept
		{0x0C, 5, 0x61},  // secure messaging → b6
		{0x45, 0, 0x00},  // back to first interindustry
		{0x55, 1, 0x11},  // chaining kept
		{0x65, 2, 0x0A},  // b6 → b4-b3 = 10
		{0x4F, 7, 0x43},
	} {
		assert.Equal(t, tt.want, WithChannel(tt.cla, tt.ch), "WithChannel(%02X, %d)", tt.cla, tt.ch)
	}
}

func TestWithChannelKeepsClass(t *testing.T) {
	for i := 0; i <= 0xFF; i++ {
		cla := byte(i)
		c, err := ParseClass(cla)
		if err != nil {
			continue
		}
		for ch := 0; ch <= 19; ch++ {
			if ch > 3 && c.Kind == KindProprietary {
				assert.Panics(t, func() { WithChannel(cla, ch) }, "%02X channel %d", cla, ch)
				continue
			}
			got, err := ParseClass(WithChannel(cla, ch))
			require.NoError(t, err)
			assert.Equal(t, ch, got.Channel, "%02X channel %d", cla, ch)
			assert.Equal(t, c.Chaining, got.Chaining, "%02X channel %d", cla, ch)
			assert.Equal(t, c.SecureMessaging != 0, got.SecureMessaging != 0, "%02X channel %d", cla, ch)
			if c.Kind == KindProprietary {
				assert.Equal(t, c.SecureMessaging, got.SecureMessaging)
			}
		}
	}
}

func TestWithChannelPanics(t *testing.T) {
	for _, tt := range []struct {
		cla byte
		ch  int
	}{
		{0x80, 4}, {0x9F, 19}, {0x20, 0}, {0xA0, 1}, {0xFF, 0}, {0x00, 20}, {0x00, -1}, {0x40, 20},
	} {
		assert.Panics(t, func() { WithChannel(tt.cla, tt.ch) }, "WithChannel(%02X, %d)", tt.cla, tt.ch)
	}
}
