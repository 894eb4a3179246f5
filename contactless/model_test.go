package contactless_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/contactless"
)

// cardOnly is the default model with the card's computing left out, so
// that a breakdown is all air time.
func cardOnly(r contactless.Rate) contactless.Model {
	m := contactless.DefaultModel(r)
	m.Processing, m.PerByte = 0, 0
	return m
}

func names(fs []contactless.Frame) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.From.String()+" "+f.Name)
	}
	return s
}

func sizes(fs []contactless.Frame) []int {
	var s []int
	for _, f := range fs {
		s = append(s, f.Bytes)
	}
	return s
}

func TestRates(t *testing.T) {
	assert.Equal(t, []contactless.Rate{106, 212, 424, 848}, contactless.Rates())
	want := []int64{128, 64, 32, 16}
	for i, r := range contactless.Rates() {
		assert.Equal(t, want[i], r.ETU(), "%v", r)
	}
	assert.Equal(t, 9440*time.Nanosecond, contactless.Rate106.BitTime(), "128/fc = 9.4395 µs")
	assert.Equal(t, 1180*time.Nanosecond, contactless.Rate848.BitTime(), "16/fc = 1.1799 µs")
	assert.Equal(t, "424 kbit/s", contactless.Rate424.String())
	assert.Zero(t, contactless.Rate(100).ETU())
	assert.Equal(t, time.Second, contactless.Cycles(contactless.Fc))
	assert.Equal(t, 86431*time.Nanosecond, contactless.Cycles(contactless.FDTPCDToPICC), "1172/fc")
}

// A case 2 APDU of 5 bytes answered by a bare status word: one I-block
// each way, PCB + INF + CRC_A.
func TestShortIBlock(t *testing.T) {
	m := cardOnly(contactless.Rate106)
	fs := m.Plan(5, 2, 0)
	require.Len(t, fs, 2)
	assert.Equal(t, contactless.Frame{From: contactless.PCD, Name: "I", Bytes: 8, Bits: 2 + 9*8}, fs[0])
	assert.Equal(t, contactless.Frame{From: contactless.PICC, Name: "I", Bytes: 5, Bits: 2 + 9*5}, fs[1])
	assert.Equal(t, "PCD I 8 bytes", fs[0].String())

	// On the air: 1172/fc before each frame, 128/fc per bit.
	b := m.ExchangeLen(5, 2, 0, false)
	assert.Equal(t, contactless.Cycles(2*1172+(74+47)*128), b.Air)
	assert.Equal(t, 1315*time.Microsecond, b.Air.Round(time.Microsecond))
	assert.Equal(t, b.Air, b.Total)
	assert.Equal(t, 2, b.Frames)
	assert.Equal(t, 13, b.Bytes)
	assert.Equal(t, 1, b.APDUs)

	// CID in every block, NAD in the first block of each direction.
	m.CID, m.NAD = true, true
	assert.Equal(t, []int{10, 7}, sizes(m.Plan(5, 2, 0)))
}

func TestChainingAboveFSC(t *testing.T) {
	m := cardOnly(contactless.Rate106)
	m.FSC, m.FSD = 32, 32 // room for 32 - PCB - CRC = 29 bytes of APDU

	assert.Equal(t, []string{"PCD I", "PICC I"}, names(m.Plan(29, 2, 0)), "29 bytes fit one block")
	fs := m.Plan(30, 2, 0)
	assert.Equal(t, []string{"PCD I chained", "PICC R(ACK)", "PCD I", "PICC I"}, names(fs))
	assert.Equal(t, []int{32, 3, 4, 5}, sizes(fs))

	// The response is chained against FSD, acknowledged by the reader.
	fs = m.Plan(10, 60, 0)
	assert.Equal(t, []string{"PCD I", "PICC I chained", "PCD R(ACK)", "PICC I chained", "PCD R(ACK)", "PICC I"}, names(fs))
	assert.Equal(t, []int{13, 32, 3, 32, 3, 5}, sizes(fs))

	// With NAD the first block has one byte less room; CID costs a byte in
	// every block, R(ACK) included.
	m.NAD = true
	assert.Equal(t, []int{32, 3, 4, 6}, sizes(m.Plan(29, 2, 0)))
	m.NAD, m.CID = false, true
	assert.Equal(t, []int{32, 4, 6, 6}, sizes(m.Plan(30, 2, 0)))

	// Chaining costs frames and time: the same exchange with the default
	// FSC is shorter.
	d := cardOnly(contactless.Rate106)
	assert.Less(t, d.ExchangeLen(100, 200, 0, false).Air, m.ExchangeLen(100, 200, 0, false).Air)
	assert.Equal(t, 2, d.ExchangeLen(253, 253, 0, false).Frames, "253 + PCB + CRC = 256 = FSC = FSD")
	assert.Equal(t, 4, d.ExchangeLen(254, 253, 0, false).Frames)
	assert.Equal(t, 4, d.ExchangeLen(253, 254, 0, false).Frames)
}

func TestRatesScaleAirTime(t *testing.T) {
	var prev time.Duration
	for i, r := range contactless.Rates() {
		m := cardOnly(r)
		fs := m.Plan(48, 66, 0)
		bits := 0
		for _, f := range fs {
			bits += f.Bits
		}
		b := m.ExchangeLen(48, 66, 0, false)
		// The frames halve with each step up; the frame delay times stay.
		assert.Equal(t, contactless.Cycles(int64(len(fs))*1172+int64(bits)*r.ETU()), b.Air, "%v", r)
		assert.InDelta(t, contactless.Cycles(int64(bits)*128>>i), b.Air-contactless.Cycles(int64(len(fs))*1172), 1, "%v", r)
		if i > 0 {
			assert.Less(t, b.Air, prev)
		}
		prev = b.Air
	}
}

func TestCardTimeAndTotals(t *testing.T) {
	m := contactless.DefaultModel(contactless.Rate424)
	m.Terminal = time.Millisecond
	b := m.ExchangeLen(48, 66, 3, true)
	assert.Equal(t, m.Processing+114*m.PerByte+m.Signature, b.Processing)
	assert.Equal(t, 3*m.PageWrite, b.Write)
	assert.Equal(t, time.Millisecond, b.Terminal)
	assert.Equal(t, b.Air+b.Processing+b.Write+b.Terminal, b.Total)
	assert.Equal(t, 1, b.Signatures)
	assert.Equal(t, 3, b.PageWrites)

	// Exchange looks only at lengths.
	assert.Equal(t, b, m.Exchange(make([]byte, 48), make([]byte, 66), 3, true))

	// A sum is the sum of its parts, field by field.
	a := m.Activation()
	s := a.Add(b).Add(b)
	assert.Equal(t, a.Total+2*b.Total, s.Total)
	assert.Equal(t, s.Air+s.Processing+s.Write+s.Terminal, s.Total)
	assert.Equal(t, a.Frames+2*b.Frames, s.Frames)
	assert.Equal(t, 2, s.APDUs)
	assert.Equal(t, 2, s.Signatures)
	assert.Contains(t, s.String(), "in 2 APDUs")
}

func TestWTX(t *testing.T) {
	m := contactless.DefaultModel(contactless.Rate106)
	fwt := m.FWT()
	assert.Equal(t, 38664*time.Microsecond, fwt.Round(time.Microsecond), "4096·2^7/fc")
	assert.Equal(t, 0, m.WTXRounds(fwt))
	assert.Equal(t, 1, m.WTXRounds(fwt+1))
	assert.Equal(t, 1, m.WTXRounds(2*fwt))
	assert.Equal(t, 2, m.WTXRounds(2*fwt+1))

	// A CHECK: 2 ms + 114 bytes + 100 ms signature + 3 pages ≈ 109 ms,
	// three FWTs begun: two S(WTX) rounds between command and response.
	b := m.ExchangeLen(48, 66, 3, true)
	assert.Equal(t, 2, b.WTX)
	assert.Equal(t, []string{"PCD I", "PICC S(WTX)", "PCD S(WTX)", "PICC S(WTX)", "PCD S(WTX)", "PICC I"}, names(m.Plan(48, 66, 2)))
	assert.Equal(t, []int{51, 4, 4, 4, 4, 69}, sizes(m.Plan(48, 66, 2)))
	assert.Equal(t, 6, b.Frames)

	// A card that answers within FWT needs none.
	m.FWI = 9
	assert.Equal(t, 0, m.ExchangeLen(48, 66, 3, true).WTX)
}

func TestActivation(t *testing.T) {
	m := contactless.DefaultModel(contactless.Rate106)
	fs := m.ActivationFrames()
	assert.Equal(t, []string{"PCD REQA", "PICC ATQA", "PCD ANTICOLLISION", "PICC UID", "PCD SELECT", "PICC SAK", "PCD RATS", "PICC ATS"}, names(fs))
	assert.Equal(t, []int{0, 2, 2, 5, 9, 3, 4, 15}, sizes(fs), "ATS: TL T0 TA TB TC, 8 historical bytes, CRC")
	assert.Equal(t, 9, fs[0].Bits, "REQA is a short frame of 7 bits")

	// 383 bits at 106 kbit/s, 7 frame delay times, the 5 ms field guard.
	a := m.Activation()
	assert.Equal(t, 5*time.Millisecond+contactless.Cycles(383*128+7*1172), a.Air)
	assert.Equal(t, 9220*time.Microsecond, a.Total.Round(10*time.Microsecond))
	assert.Zero(t, a.APDUs)
	assert.Equal(t, 8, a.Frames)

	// A 7-byte UID takes two cascade levels; above 106 kbit/s PPS follows,
	// still at 106 kbit/s, so the activation does not get faster.
	m.UIDSize = 7
	assert.Len(t, m.ActivationFrames(), 12)
	m.UIDSize, m.Rate = 4, contactless.Rate848
	fs = m.ActivationFrames()
	assert.Equal(t, []string{"PCD PPS", "PICC PPS response"}, names(fs[8:]))
	assert.Equal(t, []int{5, 3}, sizes(fs[8:]))
	assert.Greater(t, m.Activation().Total, a.Total)

	// SFGI 2 adds 4·FWTUnit after the ATS.
	m.Rate, m.SFGI = contactless.Rate106, 2
	assert.Equal(t, a.Total+contactless.Cycles(4*contactless.FWTUnit), m.Activation().Total)
}

func TestValidate(t *testing.T) {
	for _, r := range contactless.Rates() {
		require.NoError(t, contactless.DefaultModel(r).Validate())
	}
	for name, f := range map[string]func(*contactless.Model){
		"rate":      func(m *contactless.Model) { m.Rate = 100 },
		"zero":      func(m *contactless.Model) { *m = contactless.Model{} },
		"FSC small": func(m *contactless.Model) { m.FSC = 15 },
		"FSD large": func(m *contactless.Model) { m.FSD = 4097 },
		"FWI":       func(m *contactless.Model) { m.FWI = 15 },
		"SFGI":      func(m *contactless.Model) { m.SFGI = -1 },
		"UID":       func(m *contactless.Model) { m.UIDSize = 5 },
		"ATS":       func(m *contactless.Model) { m.FSD, m.ATSLen = 16, 15 },
		"negative":  func(m *contactless.Model) { m.PageWrite = -time.Millisecond },
	} {
		m := contactless.DefaultModel(contactless.Rate106)
		f(&m)
		err := m.Validate()
		require.ErrorIs(t, err, contactless.ErrInvalidModel, name)
		assert.Panics(t, func() { m.ExchangeLen(5, 2, 0, false) }, name)
	}
}
