#!/usr/bin/env bash
# fuzz.sh: run every fuzz test of the module for FUZZTIME each (default 10s).
# Fuzz tests are found by name (func FuzzXxx in *_test.go); their seed
# corpora live in each package's testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
status=0
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	pkg=$(dirname "$file")
	echo "fuzz: $pkg $name ($fuzztime)"
	if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/simtix-fuzz.log 2>&1; then
		cat /tmp/simtix-fuzz.log
		status=1
	fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sort)
exit $status
