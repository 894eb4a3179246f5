// Package attacks holds simtix's attack tests (issue #7): each test plays
// one attack on the card, the handset's sync, a gate or the server's API,
// and proves that it is refused (the exact status word, HTTP status or
// gate reason) and that no ticket is lost, doubled or changed.
//
// It has no code of its own: the tests drive the real server on SQLite,
// emulated cards and the host library, as internal/e2e does.
package attacks
