package api

import (
	"time"

	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/ticketfmt"
)

// The JSON documents of the HTTP API (openapi.yaml describes them).
// Binary values travel as lower-case hex.

// OrderRequest orders tickets for a carrier.
type OrderRequest struct {
	// Carrier is the card's serial (20 hex digits) or the MSISDN
	// registered for it.
	Carrier string `json:"carrier"`
	// IdempotencyKey makes a retried order issue its tickets once (the
	// Idempotency-Key header may carry it instead).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Tickets are the tickets' fields.
	Tickets []OrderTicket `json:"tickets"`
}

// OrderTicket is one ordered ticket's fields.
type OrderTicket struct {
	Type         uint8               `json:"type"`
	Seller       string              `json:"seller"`
	Date         ticketfmt.Date      `json:"date"`
	Time         ticketfmt.TimeOfDay `json:"time"`
	Price        uint32              `json:"price"`
	Seat         string              `json:"seat,omitempty"`
	Instructions string              `json:"instructions,omitempty"`
}

// OrderAnswer says where each ordered ticket went.
type OrderAnswer struct {
	IdempotencyKey string           `json:"idempotency_key"`
	Carrier        ticketfmt.Serial `json:"carrier"`
	Tickets        []OrderedTicket  `json:"tickets"`
	// Replayed is set when the order was seen before under its key: the
	// answer is the first one, nothing was issued again.
	Replayed bool `json:"replayed,omitempty"`
	// Summary counts the tickets by route.
	Summary map[string]int `json:"summary"`
	Issued  time.Time      `json:"issued"`
}

// OrderedTicket is one issued ticket and its route: "card" (direct: due to
// the card at its next sync) or "box" (overflow: waiting in the virtual
// ticket box).
type OrderedTicket struct {
	ID    ticketfmt.ID `json:"id"`
	Route string       `json:"route"`
	Size  int          `json:"size"`
	// Ticket is the signed ticket E1, in hex.
	Ticket string `json:"ticket"`
}

// ChallengeAnswer is a fresh sync challenge.
type ChallengeAnswer struct {
	Challenge string    `json:"challenge"`
	Expires   time.Time `json:"expires"`
}

// SyncRequest carries the card's BEGIN SYNC and LIST answers.
type SyncRequest struct {
	// Challenge is the challenge the card answered (hex, 16 bytes).
	Challenge string `json:"challenge"`
	// BeginSync is the card's E4 answer (hex).
	BeginSync string `json:"begin_sync"`
	// List is the card's LIST answer (hex; empty for an empty card).
	List string `json:"list"`
	// Final closes a sync: the box settles and plans nothing.
	Final bool `json:"final,omitempty"`
	// Exchange asks for ticket Take in place of ticket Give.
	Exchange *ExchangeRequest `json:"exchange,omitempty"`
}

// ExchangeRequest names the tickets of an exchange.
type ExchangeRequest struct {
	Give ticketfmt.ID `json:"give"`
	Take ticketfmt.ID `json:"take"`
}

// SyncAnswer is the box's answer: a session for the holder and the plan.
type SyncAnswer struct {
	Session        string    `json:"session"`
	SessionExpires time.Time `json:"session_expires"`
	Epoch          uint32    `json:"epoch"`
	Counter        uint32    `json:"counter"`
	Steps          []Step    `json:"steps"`
	// Waiting is the number of this card's tickets left in the box.
	Waiting int `json:"waiting"`
}

// Step is one authorised change for the card, in plan order.
type Step struct {
	Op            string `json:"op"`
	Ticket        string `json:"ticket,omitempty"`
	ExpectedState *byte  `json:"expected_state,omitempty"`
	// Object is the ticket E1 (STORE) or certificate E5 (PUT CERTIFICATE).
	Object string `json:"object,omitempty"`
	// Auth is the authorisation 9A: epoch ‖ counter.
	Auth string `json:"auth"`
	MAC  string `json:"mac"`
}

// TicketView is a ticket and where it is: its fields (those of an order,
// at the same JSON keys) and its state.
type TicketView struct {
	ID    ticketfmt.ID `json:"id"`
	State box.State    `json:"state"`
	OrderTicket
	Size int `json:"size"`
	// Due is set on a ticket in the box that an order answered "card":
	// the card's next sync stores it.
	Due       bool   `json:"due,omitempty"`
	CheckedBy string `json:"checked_by,omitempty"`
	CheckedAt string `json:"checked_at,omitempty"`
}

// TicketsAnswer lists a carrier's tickets.
type TicketsAnswer struct {
	Carrier ticketfmt.Serial `json:"carrier"`
	Tickets []TicketView     `json:"tickets"`
	// Flags are the reasons an operator should look at the card (network.md:
	// a ticket checked twice, a counter outside its last plan); given to
	// the operator only.
	Flags []string `json:"flags,omitempty"`
}

// JournalRequest uploads a gate's journal.
type JournalRequest struct {
	Checks []JournalRecord `json:"checks"`
}

// JournalRecord is one check a gate made.
type JournalRecord struct {
	TicketID ticketfmt.ID     `json:"ticket_id"`
	Serial   ticketfmt.Serial `json:"serial"`
	GateID   string           `json:"gate_id"`
	// Time is the gate's local check time, YYYY-MM-DDThh:mm:ss.
	Time    string `json:"time"`
	Nonce   string `json:"nonce"`
	Receipt string `json:"receipt"`
}

// JournalAnswer counts what an upload did.
type JournalAnswer struct {
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Rejected   []string `json:"rejected,omitempty"`
	// CheckedTwice lists tickets with two different checks (a cloned card).
	CheckedTwice []ticketfmt.ID `json:"checked_twice,omitempty"`
}

// DenyAnswer is the deny list: every ticket the box knows as checked.
type DenyAnswer struct {
	Tickets []ticketfmt.ID `json:"tickets"`
}

// EventAnswer tells a watching handset that tickets are due to its card.
type EventAnswer struct {
	Due int `json:"due"`
}

// ErrorAnswer is every error's body.
type ErrorAnswer struct {
	Error string `json:"error"`
}

// KeyRotation answers a rotation of the issuer key: the new current key and
// every key gates must trust from now on (the retired ones still verify
// what they signed).
type KeyRotation struct {
	// Current is the new current issuer key's ID.
	Current ticketfmt.KeyID `json:"current"`
	// Keys are the IDs of every issuer key, current and retired, in
	// ascending order.
	Keys []ticketfmt.KeyID `json:"keys"`
	// PEM is the key set as GET /v1/issuer-keys serves it and
	// DATA_DIR/issuer-keys.pem holds it, for gates (simtix gate
	// --issuer-keys).
	PEM string `json:"pem"`
}
