// Package e2e holds the end-to-end tests and benchmarks of simtix: the
// server, a card, a handset in watch mode and a gate, in-process and
// through real pcscd, on SQLite and on PostgreSQL. It has no code of its
// own.
package e2e
