package main

import (
	"fmt"
	"time"

	"github.com/simtix/simtix/contactless"
	"github.com/simtix/simtix/hostlib/gate"
)

// timingJSON is the modelled contactless time of a check (docs/contactless.md).
type timingJSON struct {
	RateKbps int `json:"rate_kbps"`
	// CheckMS is the time of the check's APDUs; FromArrivalMS adds the
	// card's activation (REQA … RATS/ATS).
	CheckMS       float64 `json:"check_ms"`
	FromArrivalMS float64 `json:"from_arrival_ms"`
	AirMS         float64 `json:"air_ms"`
	CardMS        float64 `json:"card_ms"`
	WritesMS      float64 `json:"writes_ms"`
	Frames        int     `json:"frames"`
	Bytes         int     `json:"bytes"`
}

// String is the timing as `gate` prints it.
func (t *timingJSON) String() string {
	return fmt.Sprintf("modelled %.1f ms at %d kbit/s, %.1f ms from the card's arrival", t.CheckMS, t.RateKbps, t.FromArrivalMS)
}

// timingModelFunc estimates a verdict's contactless time.
type timingModelFunc func(gate.Verdict) *timingJSON

// timingModel returns the estimate at a bit rate given in kbit/s.
func timingModel(rate int) (timingModelFunc, error) {
	var r contactless.Rate
	for _, x := range contactless.Rates() {
		if int(x) == rate {
			r = x
		}
	}
	if r == 0 {
		return nil, usagef("--rate %d: want 106, 212, 424 or 848", rate)
	}
	m := contactless.DefaultModel(r)
	return func(v gate.Verdict) *timingJSON {
		b := v.Timing(m)
		if b.APDUs == 0 {
			return nil
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		return &timingJSON{RateKbps: rate, CheckMS: ms(b.Total), FromArrivalMS: ms(b.Total + m.Activation().Total),
			AirMS: ms(b.Air), CardMS: ms(b.Processing), WritesMS: ms(b.Write), Frames: b.Frames, Bytes: b.Bytes}
	}, nil
}
