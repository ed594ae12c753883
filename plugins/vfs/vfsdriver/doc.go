// Package vfsdriver is the vfs graph driver: every layer is a full copy of its parent.
//
// Layout under the driver home (<graphroot>/vfs), shared with the established tool:
//
//	dir/<id>/      the layer's contents; also its "mount point" (Get returns it, Put does nothing).
//	               A base layer's root is mode 0555 owned by 0:0; a child starts as a copy of its
//	               parent with modes, owners, times, xattrs, hard links, devices and symlinks kept.
//	staging/       work in progress, ours only: one holder directory per Create ("create-*") or
//	               Remove ("remove-*") in flight.
//
// Crash safety: Create builds the new layer in a holder directory under staging/ and renames it to
// dir/<id> (renameat2 RENAME_NOREPLACE) only when complete, so a layer is either absent or whole
// under its real name. Remove first renames dir/<id> into a holder directory, so the layer
// disappears at once and a crash mid-delete leaves nothing under dir/. The process working in a
// holder directory keeps an exclusive flock on it; Init and Cleanup delete every holder directory
// whose lock they can take, i.e. whose owner died. Nothing is fsynced: a power loss can lose the
// contents of recently created layers, as with the established driver; the store's
// incomplete-layer protocol decides what to do with them.
//
// Concurrency: the driver keeps no state besides its options, set once by Init. Calls for
// different layers may run concurrently. Two Creates of the same ID race on the final rename and
// exactly one wins; the other gets ErrAlreadyExists.
//
// Diff, ApplyDiff, Changes and DiffSize compare and write layer directories through the naive
// differ (pluginapi/naive): vfs has no native diff.
package vfsdriver
