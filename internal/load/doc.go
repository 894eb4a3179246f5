// Package load is simtix's load test (issue #7): many emulated handsets
// syncing at once with one server over real TCP, on SQLite and on
// PostgreSQL, while an operator orders tickets and gates check them; it
// measures sync and order latency and proves that no ticket is lost.
//
// It has no code of its own. `go test ./internal/load/` runs a small load;
// `make load` (go test -run TestLoad -load.full) runs 1,000 handsets on
// each database, for docs/benchmarks.md.
package load
