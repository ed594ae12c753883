#!/usr/bin/env bash
# make bench: every benchmark the issues ask for, with the figures printed.
# $1 is the layer size pushed through the drivers (default 1GiB; MiB or GiB suffix).
# Layer contents go to tmpfs (/dev/shm) so the figures are the code's, not this noisy disk's.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1GiB}
case "$size" in
*GiB) mib=$(( ${size%GiB} * 1024 )) ;;
*MiB) mib=${size%MiB} ;;
*) echo "bench: size must end in MiB or GiB: $size" >&2; exit 2 ;;
esac
scratch=$(mktemp -d /dev/shm/containers-storage-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
section() { printf '\n== %s (load average %s)\n' "$1" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

section "plugin boundary: diff+apply of a $size layer, same driver code in-process vs through its plugin"
go run ./internal/bench/pluginio -driver vfs -size "$size" -bin bin -dir "$scratch"

drivers=vfs
if [ "$(id -u)" = 0 ] && grep -qw overlay /proc/filesystems; then
	drivers=vfs,overlay
	section "plugin boundary, overlay"
	go run ./internal/bench/pluginio -driver overlay -size "$size" -bin bin -dir "$scratch"
fi

section "drivers side by side: apply/diff of a $size layer of 16 KiB files, mount latency with 1 and 128 lowers"
go run ./internal/bench/drivers -drivers "$drivers" -size-mib "$mib" -bin bin -dir "$scratch"

section "store: open and lookups at 1,000 and 10,000 layers and images"
go test -run '^$' -bench . -benchtime 1x ./core/ | grep -E '^(Benchmark|ok|FAIL)'

section "archive apply, plugin stream framing, overlay driver (go test -bench)"
go test -run '^$' -bench . ./archive/ ./pluginapi/ ./plugins/overlay/ | grep -E '^(Benchmark|ok|FAIL)'
