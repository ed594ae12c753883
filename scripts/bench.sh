#!/usr/bin/env bash
# make bench: every benchmark the issues ask for, with the figures printed.
# $1 is the layer size pushed through the plugin boundary (default 1GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1GiB}
scratch=$(mktemp -d /var/tmp/containers-storage-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

section() { printf '\n== %s\n' "$*"; }

section "plugin boundary: diff+apply of a $size layer, in-process vs through the plugin (vfs)"
go run ./internal/bench/pluginio -driver vfs -size "$size" -bin bin -dir "$scratch"
if [ "$(id -u)" = 0 ] && grep -qw overlay /proc/filesystems; then
	section "plugin boundary: diff+apply of a $size layer, in-process vs through the plugin (overlay)"
	go run ./internal/bench/pluginio -driver overlay -size "$size" -bin bin -dir "$scratch"
fi

section "go benchmarks: archive, plugin stream framing, store, drivers"
go test -run '^$' -bench . -benchtime 1x -count 1 -timeout 30m \
	./archive/ ./pluginapi/ ./core/ ./plugins/... 2>&1 | grep -Ev '^(goos|goarch|pkg|cpu):'
