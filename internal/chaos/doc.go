// Package chaos holds simtix's randomized, seeded test of ticket migration
// under faults (issue #7, docs/reliability.md "Migration under faults"):
// thousands of orders, syncs, gate checks and exchanges against one server
// and several emulated cards, with responses lost, cards removed and torn
// mid-write, the server restarted mid-sync and HTTP requests retried, and
// simtix's promises checked after every step.
//
// It is a test only: the package has no code of its own. Run it with
// `go test ./internal/chaos` (a short run) or `make soak` (a long one);
// -chaos.seed and -chaos.steps (or SIMTIX_CHAOS_SEED and
// SIMTIX_CHAOS_STEPS) replay a run.
package chaos
