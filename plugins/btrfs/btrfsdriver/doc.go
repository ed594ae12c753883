// Package btrfsdriver is the btrfs graph driver: every layer is a btrfs subvolume, and a child
// layer is a writable snapshot of its parent's subvolume. It speaks to the kernel through btrfs
// ioctls only (no btrfs-progs, no cgo).
//
// Layout (as the established driver's): Home is <graphroot>/btrfs, bind-mounted privately onto
// itself by Init and unmounted by Cleanup; Home/subvolumes/<layerID> is layer <layerID>;
// Home/quotas/<layerID> records a layer's size quota in bytes. Get returns the subvolume path
// (nothing is mounted) and Put does nothing. Diffs use the naive differ (pluginapi/naive), which
// compares two layers' trees.
//
// Crash safety: a subvolume is created and snapshotted atomically by the kernel; Create deletes
// it again if chmod or the quota fails. Remove deletes nested subvolumes (a container may create
// subvolumes inside its layer) deepest first, then the layer. All state is on disk: a restarted
// plugin needs only Init.
//
// Options ("btrfs.", "." or no prefix): min_space (smallest accepted size quota; also turns
// quota accounting on at Init) and size (quota of read-write layers created without one). Any
// other key is ErrInvalidArgument naming it. The "size" storage option of Create sets a layer's
// quota as a qgroup limit; a child without one inherits its parent's.
package btrfsdriver
