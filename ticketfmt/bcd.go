package ticketfmt

import (
	"errors"
	"fmt"
	"time"
)

// Errors of BCD dates and times.
var (
	// ErrBCD means a nibble that is not a decimal digit.
	ErrBCD = errors.New("invalid BCD digit")
	// ErrNoSuchDate means well-formed digits that name no real date or time
	// (2026-02-30, 24:61).
	ErrNoSuchDate = errors.New("no such date or time")
)

// Date is a calendar date, encoded as 4 bytes of BCD YYYYMMDD. Its text form
// is YYYY-MM-DD.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// TimeOfDay is a local time of day to the minute, encoded as 2 bytes of BCD
// HHMM (24 h). Its text form is HH:MM.
type TimeOfDay struct {
	Hour   int
	Minute int
}

// DateTime is a local date and time to the second, encoded as 7 bytes of BCD
// YYYYMMDDhhmmss (the card's check time). Its text form is
// YYYY-MM-DDThh:mm:ss.
type DateTime struct {
	Date
	Hour   int
	Minute int
	Second int
}

// Encoded sizes.
const (
	dateSize     = 4
	timeSize     = 2
	dateTimeSize = 7
)

// DateOf returns the date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

// TimeOfDayOf returns the time of day of t in t's location, to the minute.
func TimeOfDayOf(t time.Time) TimeOfDay {
	return TimeOfDay{Hour: t.Hour(), Minute: t.Minute()}
}

// DateTimeOf returns the date and time of t in t's location, to the second.
func DateTimeOf(t time.Time) DateTime {
	return DateTime{Date: DateOf(t), Hour: t.Hour(), Minute: t.Minute(), Second: t.Second()}
}

// Valid reports whether d is a real date between the years 0000 and 9999.
func (d Date) Valid() bool {
	if d.Year < 0 || d.Year > 9999 || d.Month < 1 || d.Month > 12 || d.Day < 1 {
		return false
	}
	return d.Day <= time.Date(d.Year, d.Month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Valid reports whether t is a time of day from 00:00 to 23:59.
func (t TimeOfDay) Valid() bool {
	return t.Hour >= 0 && t.Hour < 24 && t.Minute >= 0 && t.Minute < 60
}

// Valid reports whether t is a real date and time (seconds 00 to 59).
func (t DateTime) Valid() bool {
	return t.Date.Valid() && TimeOfDay{t.Hour, t.Minute}.Valid() && t.Second >= 0 && t.Second < 60
}

// In returns the moment d at time of day tod in loc.
func (d Date) In(tod TimeOfDay, loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, tod.Hour, tod.Minute, 0, 0, loc)
}

// In returns the moment t in loc.
func (t DateTime) In(loc *time.Location) time.Time {
	return time.Date(t.Year, t.Month, t.Day, t.Hour, t.Minute, t.Second, 0, loc)
}

// Compare returns -1, 0 or +1 as d is before, equal to or after o.
func (d Date) Compare(o Date) int {
	switch {
	case d.Year != o.Year:
		return cmpInt(d.Year, o.Year)
	case d.Month != o.Month:
		return cmpInt(int(d.Month), int(o.Month))
	default:
		return cmpInt(d.Day, o.Day)
	}
}

// Compare returns -1, 0 or +1 as t is before, equal to or after o.
func (t TimeOfDay) Compare(o TimeOfDay) int {
	if t.Hour != o.Hour {
		return cmpInt(t.Hour, o.Hour)
	}
	return cmpInt(t.Minute, o.Minute)
}

// CompareUse orders two use dates and times (date d at time t, and date
// od at time ot): -1, 0 or +1 as the first is sooner than, the same as or
// later than the second.
func CompareUse(d Date, t TimeOfDay, od Date, ot TimeOfDay) int {
	if c := d.Compare(od); c != 0 {
		return c
	}
	return t.Compare(ot)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// String formats t as HH:MM.
func (t TimeOfDay) String() string { return fmt.Sprintf("%02d:%02d", t.Hour, t.Minute) }

// String formats t as YYYY-MM-DDThh:mm:ss.
func (t DateTime) String() string {
	return fmt.Sprintf("%vT%02d:%02d:%02d", t.Date, t.Hour, t.Minute, t.Second)
}

// ParseDate parses YYYY-MM-DD and checks that the date exists.
func ParseDate(s string) (Date, error) {
	tt, err := time.Parse("2006-01-02", s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: %w (want YYYY-MM-DD)", s, ErrNoSuchDate)
	}
	return DateOf(tt), nil
}

// ParseTimeOfDay parses HH:MM (24 h).
func ParseTimeOfDay(s string) (TimeOfDay, error) {
	tt, err := time.Parse("15:04", s)
	if err != nil {
		return TimeOfDay{}, fmt.Errorf("time %q: %w (want HH:MM, 00:00 to 23:59)", s, ErrNoSuchDate)
	}
	return TimeOfDayOf(tt), nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Date) MarshalText() ([]byte, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("date %v: %w", d, ErrNoSuchDate)
	}
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (t TimeOfDay) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("time %v: %w", t, ErrNoSuchDate)
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TimeOfDay) UnmarshalText(b []byte) error {
	v, err := ParseTimeOfDay(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// AppendBCD appends the 4-byte BCD form YYYYMMDD.
func (d Date) AppendBCD(b []byte) []byte {
	return appendDigits(b, d.Year/100, d.Year%100, int(d.Month), d.Day)
}

// AppendBCD appends the 2-byte BCD form HHMM.
func (t TimeOfDay) AppendBCD(b []byte) []byte {
	return appendDigits(b, t.Hour, t.Minute)
}

// AppendBCD appends the 7-byte BCD form YYYYMMDDhhmmss.
func (t DateTime) AppendBCD(b []byte) []byte {
	return appendDigits(t.Date.AppendBCD(b), t.Hour, t.Minute, t.Second)
}

// DecodeDate decodes 4 bytes of BCD YYYYMMDD and checks the date exists.
func DecodeDate(b []byte) (Date, error) {
	v, err := decodeDigits(b, dateSize)
	if err != nil {
		return Date{}, err
	}
	d := Date{Year: v[0]*100 + v[1], Month: time.Month(v[2]), Day: v[3]}
	if !d.Valid() {
		return Date{}, fmt.Errorf("%w: %X", ErrNoSuchDate, b)
	}
	return d, nil
}

// DecodeTimeOfDay decodes 2 bytes of BCD HHMM and checks the time exists.
func DecodeTimeOfDay(b []byte) (TimeOfDay, error) {
	v, err := decodeDigits(b, timeSize)
	if err != nil {
		return TimeOfDay{}, err
	}
	t := TimeOfDay{Hour: v[0], Minute: v[1]}
	if !t.Valid() {
		return TimeOfDay{}, fmt.Errorf("%w: %X", ErrNoSuchDate, b)
	}
	return t, nil
}

// DecodeDateTime decodes 7 bytes of BCD YYYYMMDDhhmmss and checks the date
// and time exist.
func DecodeDateTime(b []byte) (DateTime, error) {
	v, err := decodeDigits(b, dateTimeSize)
	if err != nil {
		return DateTime{}, err
	}
	t := DateTime{
		Date: Date{Year: v[0]*100 + v[1], Month: time.Month(v[2]), Day: v[3]},
		Hour: v[4], Minute: v[5], Second: v[6],
	}
	if !t.Valid() {
		return DateTime{}, fmt.Errorf("%w: %X", ErrNoSuchDate, b)
	}
	return t, nil
}

func appendDigits(b []byte, pairs ...int) []byte {
	for _, p := range pairs {
		b = append(b, byte(p/10%10)<<4|byte(p%10))
	}
	return b
}

// decodeDigits returns each of the n bytes of b as a number 0-99.
func decodeDigits(b []byte, n int) ([dateTimeSize]int, error) {
	var out [dateTimeSize]int
	if len(b) != n {
		return out, fmt.Errorf("%w: %d bytes, want %d", ErrSize, len(b), n)
	}
	for i, c := range b {
		hi, lo := c>>4, c&0x0F
		if hi > 9 || lo > 9 {
			return out, fmt.Errorf("%w: %X", ErrBCD, b)
		}
		out[i] = int(hi)*10 + int(lo)
	}
	return out, nil
}
