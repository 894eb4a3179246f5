// Package store is the ticket center's and virtual ticket box's database
// interface: tickets and where they are, cards, sync challenges, orders
// with their idempotency keys, and gate checks. store/sqlite (the embedded
// default) and store/postgres implement it; store/storetest is the
// conformance suite both pass.
//
// It decides nothing: package box decides where tickets go, the server
// calls the store inside one transaction per state change.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/ticketfmt"
)

// Errors, matched with errors.Is.
var (
	// ErrNotFound means no such card, ticket, challenge, MSISDN or order.
	ErrNotFound = errors.New("store: not found")
	// ErrExists means a ticket ID, MSISDN or idempotency key already used.
	ErrExists = errors.New("store: already exists")
	// ErrConflict means a conditional change found the row in another state
	// than expected: a concurrent change won; nothing was written.
	ErrConflict = errors.New("store: conflicting change")
	// ErrClosed means the store was closed: Notifier.Listen after (or
	// during) Close returns it, and should not be called again.
	ErrClosed = errors.New("store: closed")
)

// Store is the database. Implementations are safe for concurrent use.
type Store interface {
	// Update runs fn in one read-write transaction, committed when fn
	// returns nil and rolled back otherwise (fn's error is returned).
	// Implementations may run fn again after a serialisation failure, so
	// fn must not have effects outside tx.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in one read-only transaction.
	View(ctx context.Context, fn func(tx Tx) error) error
	// Close closes the database.
	Close() error
}

// Notifier is implemented by a store that several server processes share
// (store/postgres): what a transaction announces with Tx.NotifyDue reaches
// every process's Listen when it commits, so that a handset watching one
// process learns of an order another one took. A store for one process
// (store/sqlite) does not implement it: that process wakes its own
// watchers.
type Notifier interface {
	// Listen listens for the NotifyDue of committed transactions, from any
	// process on the database, until ctx is done, the connection it
	// listens on fails or the store is closed, and returns why: ctx's
	// error, the failure (the caller may call Listen again) or ErrClosed.
	//
	// It calls listening once it listens: a NotifyDue committed after that
	// reaches due; one committed before, or while no Listen was listening,
	// is lost, so the caller should then look again at what it waits for.
	// It calls due with the serial of each NotifyDue, in commit order (a
	// serial announced twice may come once or twice). Both callbacks are
	// called one at a time from Listen's goroutine and must not block.
	Listen(ctx context.Context, listening func(), due func(serial ticketfmt.Serial)) error
}

// Card is a card as the store keeps it: the box's view and the card's
// registration.
type Card struct {
	box.Card
	// Registered is set at the card's first accepted sync; a card that is
	// only locked (or named in an order) is not registered.
	Registered bool
	// MSISDN is the phone number registered for the card, if any.
	MSISDN string
}

// Check is one check of a ticket reported by a gate's journal. A check is
// identified by (TicketID, Serial, Gate, Time).
type Check struct {
	TicketID ticketfmt.ID
	Serial   ticketfmt.Serial
	Gate     [4]byte
	Time     ticketfmt.DateTime
	Nonce    []byte
	Receipt  []byte
	// Received is when the server stored it.
	Received time.Time
}

// Tx is one transaction. An ErrNotFound, ErrExists or ErrConflict from one
// of its methods leaves the transaction usable; any other error aborts it.
type Tx interface {
	// LockCard returns the card with this serial and locks it until the end
	// of the transaction: concurrent syncs of one card run one after the
	// other. A card the store has never seen is created unregistered (so
	// that its first syncs serialise too) and returned.
	LockCard(ctx context.Context, serial ticketfmt.Serial) (*Card, error)
	// Card returns a card without locking it, or ErrNotFound.
	Card(ctx context.Context, serial ticketfmt.Serial) (*Card, error)
	// PutCard writes a card (its box state, registration and flags),
	// creating it if needed; it leaves the card's MSISDN as it is.
	PutCard(ctx context.Context, c *Card) error
	// SetMSISDN registers an MSISDN for a card; ErrExists if another card
	// has it.
	SetMSISDN(ctx context.Context, serial ticketfmt.Serial, msisdn string) error
	// SerialOf returns the card an MSISDN is registered for, or
	// ErrNotFound.
	SerialOf(ctx context.Context, msisdn string) (ticketfmt.Serial, error)

	// InsertTickets adds new tickets; their Seq is set from the store's
	// issue order. ErrExists if an ID is taken (nothing inserted).
	InsertTickets(ctx context.Context, ts []*box.Ticket) error
	// Ticket returns one ticket, or ErrNotFound.
	Ticket(ctx context.Context, id ticketfmt.ID) (*box.Ticket, error)
	// TicketsOf returns a carrier's tickets in issue order.
	TicketsOf(ctx context.Context, serial ticketfmt.Serial) ([]*box.Ticket, error)
	// MoveTicket writes t's state (and its authorisation, check and OffCard
	// fields) if the stored ticket is still in state from; else
	// ErrConflict (ErrNotFound for no such ticket) and nothing changes.
	MoveTicket(ctx context.Context, t *box.Ticket, from box.State) error
	// CountTickets returns how many tickets the store holds, by state.
	CountTickets(ctx context.Context) (map[box.State]int, error)

	// PutChallenge keeps a sync challenge for a card until expires.
	PutChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, expires time.Time) error
	// TakeChallenge uses a challenge once: it succeeds only for a challenge
	// given for this serial, not used before and not expired at now, and
	// deletes it. Otherwise ErrNotFound.
	TakeChallenge(ctx context.Context, serial ticketfmt.Serial, challenge []byte, now time.Time) error

	// PutOrder records an order's answer under its idempotency key;
	// ErrExists if the key is taken.
	PutOrder(ctx context.Context, key string, answer []byte) error
	// Order returns the answer recorded under key, or ErrNotFound.
	Order(ctx context.Context, key string) ([]byte, error)

	// AddCheck records a gate's check; added is false when this exact check
	// (same ticket, serial, gate and time) was recorded before.
	AddCheck(ctx context.Context, c Check) (added bool, err error)
	// ChecksOf returns the recorded checks of a ticket, oldest first.
	ChecksOf(ctx context.Context, id ticketfmt.ID) ([]Check, error)
	// DenyList returns the IDs of every ticket in state Checked, in
	// ascending order.
	DenyList(ctx context.Context) ([]ticketfmt.ID, error)

	// NotifyDue announces that tickets became due to serial's card, to
	// every Notifier.Listen on the database when the transaction commits;
	// a transaction rolled back announces nothing. A store that is not a
	// Notifier does nothing. Call it in Update.
	NotifyDue(ctx context.Context, serial ticketfmt.Serial) error
}
