# simtix: `make demo` shows what works, `make test` runs every test.
# Both install what they need on a fresh Debian machine (scripts/deps.sh).

GO ?= go
# scripts/deps.sh installs Go in /usr/local/go when the machine has none
# new enough: it comes first.
export PATH := /usr/local/go/bin:$(PATH)
FUZZTIME ?= 5s
BENCHTIME ?= 1s

.PHONY: all build demo test check unit fuzz bench deps fmt clean

all: build

deps:
	@scripts/deps.sh test

build:
	@scripts/deps.sh build
	$(GO) build -o bin/simtix ./cmd/simtix

demo:
	@scripts/deps.sh build
	$(GO) run ./cmd/simtix demo

# test: formatting, vet, staticcheck, the race-detecting test suite and short
# fuzz runs of every parser.
test: deps check unit fuzz

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench: deps
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# load: 1,000 emulated handsets syncing with one server over TCP, on SQLite
# and on PostgreSQL, while orders arrive and gates check (issue #7): each
# handset every 5 s, then flat out. Figures in docs/benchmarks.md.
.PHONY: load
load: deps
	$(GO) test -run '^TestLoad$$' -count=1 -v -timeout 30m ./internal/load/ -load.full
	$(GO) test -run '^TestLoad$$' -count=1 -v -timeout 30m ./internal/load/ -load.full -load.pause=0

# soak: the migration-under-faults test (internal/chaos, docs/reliability.md)
# at length: SOAK_STEPS random steps with a random seed (printed; replay a
# run with SOAK_SEED=<seed>).
SOAK_STEPS ?= 20000
SOAK_SEED ?= random
.PHONY: soak
soak:
	$(GO) test -run '^TestMigrationUnderFaults$$' -count=1 -v -timeout 3h ./internal/chaos/ -chaos.steps=$(SOAK_STEPS) -chaos.seed=$(SOAK_SEED)
