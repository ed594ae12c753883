// Package overlaydriver is the overlay graph driver: layers are overlayfs upper directories
// stacked through their ancestors' upper directories as lower directories. It keeps the on-disk
// layout of the established containers/storage overlay driver (SPEC-disk §1.7), so a graph root
// can be shared with the established tools:
//
//	<home>/l/<short>          symlink to ../<id>/diff; <short> is 26 base32 characters
//	<home>/<id>/diff/         the layer's upper directory (the layer's own changes)
//	<home>/<id>/link          <short>, no trailing newline
//	<home>/<id>/lower         l/<parentShort>:l/<grandparentShort>:... (absent for a base layer)
//	<home>/<id>/work/         overlayfs work directory
//	<home>/<id>/merged/       mount point
//	<home>/<id>/empty/        base layers only: the lower directory of a mount with no lowers
//	<home>/.has-mount-program "true" or "false"
//	<home>/tempdirs/          layers being removed (renamed here first, then deleted)
//	<runhome>/<feature>-true|false   cached kernel feature probes
//
// Invariants and crash behaviour:
//   - A layer directory <home>/<id> appears atomically: Create builds it in a hidden staging
//     directory and renames it into place. Remove renames it into tempdirs/ before deleting it.
//     Init deletes leftovers of both, so a crash never leaves a half-built or half-removed layer
//     under its ID.
//   - The driver keeps no state in memory that is not on disk: whether a layer is mounted is read
//     from /proc/self/mountinfo, the lower chain from the lower file, feature probes from the run
//     home. Mounts are made in the caller's mount namespace and outlive the plugin process; only
//     Put, Remove and Cleanup unmount.
//   - l/ links, link files and merged/ are recreated when missing (users delete them). A lower
//     file cannot be rebuilt; a layer whose lower chain names a link that no layer's link file
//     names any more is reported ErrCorrupt.
//   - Mounts name the lowers relative to the home (l/<short>) from a thread whose working
//     directory is the home, so even 500 lowers stay far below the one-page mount data limit
//     (with the new mount API each lower is passed separately; without it, the joined option
//     string must fit in a page).
//
// Locking: calls for different layers may run concurrently. The driver serialises calls on the
// same layer with an in-memory per-ID lock (mutual exclusion only, not state); the store's layer
// lock is what orders calls across processes.
//
// Diffs: when the kernel's overlay is trusted for native diffs (no metacopy, no redirect_dir; see
// probe.go) and the parent asked for is the layer's real parent, Diff, Changes and DiffSize read
// diff/ directly and ApplyDiff writes into it with overlay whiteouts. Otherwise the naive differ
// compares mounted trees.
package overlaydriver
