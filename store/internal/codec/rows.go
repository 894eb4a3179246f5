package codec

import (
	"errors"

	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// Rows is what both drivers' result sets offer (*sql.Rows, pgx.Rows).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Collect scans every row of rows with scan, in order.
func Collect[T any](rows Rows, scan func(Rows) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ScanID scans a row of one column, a ticket ID.
func ScanID(r Rows) (ticketfmt.ID, error) {
	var (
		id ticketfmt.ID
		b  []byte
	)
	if err := r.Scan(&b); err != nil {
		return id, err
	}
	return id, Fixed(id[:], b, "ticket ID")
}

// CheckColumns are the columns of a check row, as CheckRow decodes them
// (received is the driver's own: scanned by the caller).
const CheckColumns = `ticket_id, serial, gate, check_time, nonce, receipt, received`

// CheckRow decodes a check row's columns but received.
func CheckRow(tid, serial, gate []byte, at int64, nonce, receipt []byte) (store.Check, error) {
	var c store.Check
	err := errors.Join(Fixed(c.TicketID[:], tid, "ticket ID"), Fixed(c.Serial[:], serial, "serial"), Fixed(c.Gate[:], gate, "gate ID"))
	c.Time = IntDateTime(at)
	c.Nonce, c.Receipt = OrNil(nonce), OrNil(receipt)
	return c, err
}
