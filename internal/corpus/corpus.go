// Package corpus holds the realistic ticket corpus of
// ../shared/data/tickets.json (a copy, embedded) for the demo, tests and
// benchmarks. The tickets have no ID, carrier or signature yet.
package corpus

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/simtix/simtix/ticketfmt"
)

//go:embed tickets.json
var raw []byte

// Raw returns the corpus as JSON, in the form `simtix order --file` takes.
func Raw() []byte { return append([]byte(nil), raw...) }

// Tickets decodes the corpus: the fields an order gives (type, seller, date,
// time, price, seat, instructions).
func Tickets() ([]ticketfmt.Ticket, error) {
	var ts []ticketfmt.Ticket
	if err := json.Unmarshal(raw, &ts); err != nil {
		return nil, fmt.Errorf("ticket corpus: %w", err)
	}
	return ts, nil
}
