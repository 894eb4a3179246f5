# simtix: `make demo` shows what works, `make test` runs every test.
# Both install what they need on a fresh Debian machine (scripts/deps.sh).

GO ?= go
export PATH := $(PATH):/usr/local/go/bin
FUZZTIME ?= 10s
BENCHTIME ?= 1s

.PHONY: all build demo test check unit fuzz bench deps fmt clean

all: build

deps:
	@scripts/deps.sh test

build:
	$(GO) build -o bin/simtix ./cmd/simtix

demo:
	@scripts/deps.sh go
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
