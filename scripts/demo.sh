#!/usr/bin/env bash
# A short scripted session against a throw-away store: the README's first command (make demo).
# Uses overlay when run as root on a kernel with overlayfs, vfs otherwise. Leaves nothing behind:
# the store is wiped and shut down (which releases overlay's home bind mount) and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=$PWD/bin/containers-storage

driver=vfs
if [ "$(id -u)" = 0 ] && grep -qw overlay /proc/filesystems && [ -x bin/containers-storage-driver-overlay ]; then
	driver=overlay
fi
work=$(mktemp -d /tmp/containers-storage-demo.XXXXXX)
cs() { printf '\n$ containers-storage %s\n' "$*"; "$cli" -g "$work/graph" -R "$work/run" -s "$driver" "$@"; }
quiet() { "$cli" -g "$work/graph" -R "$work/run" -s "$driver" "$@"; }
cleanup() {
	quiet wipe >/dev/null 2>&1 || true
	quiet shutdown >/dev/null 2>&1 || true
	if grep -q " $work" /proc/self/mountinfo; then
		echo "demo: mounts left under $work" >&2
		grep " $work" /proc/self/mountinfo >&2
		exit 1
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "demo: driver $driver, store in $work"
mkdir -p "$work/src/etc"
echo "hello from the base layer" >"$work/src/hello.txt"
echo "message of the day" >"$work/src/etc/motd"
tar -C "$work/src" -czf "$work/base.tar.gz" .

layer=$(quiet import-layer -n demo-base -f "$work/base.tar.gz" | head -n 1)
echo "imported layer $layer from a gzip tar"
cs layer demo-base
image=$(quiet create-image -n demo-image "$layer" | head -n 1)
echo '{"schemaVersion":2,"layers":[]}' >"$work/manifest.json"
cs set-image-data -f "$work/manifest.json" demo-image manifest
cs image demo-image
ctr=$(quiet create-container -n demo-ctr demo-image | head -n 1)
cs containers
mnt=$(quiet mount demo-ctr)
echo "mounted demo-ctr at $mnt"
cat "$mnt/hello.txt"
echo "written inside the container" >"$mnt/new.txt"
rm "$mnt/etc/motd"
ctr_layer=$(quiet container -j demo-ctr | sed -n 's/.*"layer":"\([0-9a-f]*\)".*/\1/p')
cs changes "$ctr_layer"
printf '\n$ containers-storage diff -u %s | tar -tv\n' "$ctr_layer"
quiet diff -u "$ctr_layer" | tar -tvf -
cs layers
cs images
cs unmount demo-ctr
cs wipe
cs shutdown
echo
echo "demo: done"
