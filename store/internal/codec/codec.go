// Package codec maps the box's types to the column values both SQL stores
// use: card state as JSON, dates and times as integers, fixed-size byte
// fields. It is shared by store/sqlite and store/postgres and is not API.
package codec

// This file is the same in store/sqlite and store/postgres (but for the
// package name): how values without a column type of their own are stored.

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/ticketfmt"
)

// statusJSON is the stored form of a card's last status. Its field names
// are the database's, apart from the Go names, so that renaming a Go field
// does not lose stored data (it breaks the build here instead).
type statusJSON struct {
	Capacity    int              `json:"capacity"`
	Free        int              `json:"free"`
	Reclaimable int              `json:"reclaimable"`
	MaxTickets  int              `json:"max_tickets"`
	Stored      int              `json:"stored"`
	Checked     int              `json:"checked"`
	Overhead    int              `json:"overhead"`
	Counter     uint32           `json:"counter"`
	Serial      ticketfmt.Serial `json:"serial"`
	Version     uint16           `json:"version"`
	Epoch       uint32           `json:"epoch"`
}

// planJSON is the stored form of a card's unsettled plan.
type planJSON struct {
	Epoch uint32     `json:"epoch"`
	C0    uint32     `json:"c0"`
	Items []itemJSON `json:"items,omitempty"`
}

type itemJSON struct {
	Op       string       `json:"op"`
	Ticket   ticketfmt.ID `json:"ticket"`
	Expected byte         `json:"expected"`
}

// EncodeCard returns the JSON of a card's status, plan and flags.
func EncodeCard(c *box.Card) (status, plan, flags []byte, err error) {
	s := c.Status
	status, err = json.Marshal(statusJSON{
		Capacity: s.Capacity, Free: s.Free, Reclaimable: s.Reclaimable, MaxTickets: s.MaxTickets,
		Stored: s.Stored, Checked: s.Checked, Overhead: s.Overhead, Counter: s.Counter,
		Serial: s.Serial, Version: s.Version, Epoch: s.Epoch,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("card %v status: %w", c.Serial, err)
	}
	p := planJSON{Epoch: c.Plan.Epoch, C0: c.Plan.C0}
	for _, it := range c.Plan.Items {
		p.Items = append(p.Items, itemJSON{Op: string(it.Op), Ticket: it.Ticket, Expected: it.Expected})
	}
	if plan, err = json.Marshal(p); err != nil {
		return nil, nil, nil, fmt.Errorf("card %v plan: %w", c.Serial, err)
	}
	fl := c.Flags
	if fl == nil {
		fl = []string{}
	}
	if flags, err = json.Marshal(fl); err != nil {
		return nil, nil, nil, fmt.Errorf("card %v flags: %w", c.Serial, err)
	}
	return status, plan, flags, nil
}

// DecodeCard fills a card's status, plan and flags from their JSON. Empty
// plans and flag lists come back nil.
func DecodeCard(c *box.Card, status, plan, flags []byte) error {
	var s statusJSON
	if err := json.Unmarshal(status, &s); err != nil {
		return fmt.Errorf("card %v status: %w", c.Serial, err)
	}
	c.Status = cardproto.StatusTemplate{
		Capacity: s.Capacity, Free: s.Free, Reclaimable: s.Reclaimable, MaxTickets: s.MaxTickets,
		Stored: s.Stored, Checked: s.Checked, Overhead: s.Overhead, Counter: s.Counter,
		Serial: s.Serial, Version: s.Version, Epoch: s.Epoch,
	}
	var p planJSON
	if err := json.Unmarshal(plan, &p); err != nil {
		return fmt.Errorf("card %v plan: %w", c.Serial, err)
	}
	c.Plan = box.Plan{Epoch: p.Epoch, C0: p.C0}
	for _, it := range p.Items {
		c.Plan.Items = append(c.Plan.Items, box.Item{Op: box.Op(it.Op), Ticket: it.Ticket, Expected: it.Expected})
	}
	c.Flags = nil
	if err := json.Unmarshal(flags, &c.Flags); err != nil {
		return fmt.Errorf("card %v flags: %w", c.Serial, err)
	}
	if len(c.Flags) == 0 {
		c.Flags = nil
	}
	return nil
}

// DateInt is a date as the integer YYYYMMDD.
func DateInt(d ticketfmt.Date) (int64, error) {
	v := int64(d.Year)*10000 + int64(d.Month)*100 + int64(d.Day)
	if IntDate(v) != d {
		return 0, fmt.Errorf("date %v cannot be stored", d)
	}
	return v, nil
}

// IntDate reads a date from its integer YYYYMMDD.
func IntDate(v int64) ticketfmt.Date {
	return ticketfmt.Date{Year: int(v / 10000), Month: time.Month(v / 100 % 100), Day: int(v % 100)}
}

// TimeInt is a time of day as the integer HHMM.
func TimeInt(t ticketfmt.TimeOfDay) (int64, error) {
	v := int64(t.Hour)*100 + int64(t.Minute)
	if IntTime(v) != t {
		return 0, fmt.Errorf("time of day %v cannot be stored", t)
	}
	return v, nil
}

// IntTime reads a time of day from its integer HHMM.
func IntTime(v int64) ticketfmt.TimeOfDay {
	return ticketfmt.TimeOfDay{Hour: int(v / 100), Minute: int(v % 100)}
}

// DateTimeInt is a date and time as the integer YYYYMMDDhhmmss.
func DateTimeInt(t ticketfmt.DateTime) (int64, error) {
	d, err := DateInt(t.Date)
	if err != nil {
		return 0, err
	}
	v := d*1000000 + int64(t.Hour)*10000 + int64(t.Minute)*100 + int64(t.Second)
	if IntDateTime(v) != t {
		return 0, fmt.Errorf("date and time %v cannot be stored", t)
	}
	return v, nil
}

// IntDateTime reads a date and time from its integer YYYYMMDDhhmmss.
func IntDateTime(v int64) ticketfmt.DateTime {
	return ticketfmt.DateTime{
		Date: IntDate(v / 1000000),
		Hour: int(v / 10000 % 100), Minute: int(v / 100 % 100), Second: int(v % 100),
	}
}

// Fixed copies b into dst, which it must fill exactly.
func Fixed(dst []byte, b []byte, what string) error {
	if len(b) != len(dst) {
		return fmt.Errorf("stored %s has %d bytes, want %d", what, len(b), len(dst))
	}
	copy(dst, b)
	return nil
}

// OrEmpty returns b, or an empty slice for nil (for NOT NULL columns).
func OrEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// OrNil returns b, or nil if it is empty.
func OrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
