// Package archive reads and writes layer tar streams: it extracts a layer tar into a layer
// directory (Apply), writes a directory tree as a tar (Tar), compares two trees (Changes), writes
// the tar of a change list (ExportChanges) and wraps streams in and out of compression.
//
// Vocabulary. A layer tar is an uncompressed tar whose entry names are relative to the layer
// root ("etc/passwd", directories with a trailing "/"). Deletions are OCI whiteouts: an entry
// "<dir>/.wh.<name>" deletes <dir>/<name>, and "<dir>/.wh..wh..opq" (an opaque marker) hides
// everything below <dir> that the layer itself does not add. On disk a layer directory keeps
// deletions in one of two WhiteoutFormats: WhiteoutOCI (full-copy drivers: the deletion is simply
// performed) or WhiteoutOverlay (overlay upper dirs: a 0/0 character device and the
// trusted.overlay.opaque=y xattr).
//
// Containment invariant. Apply never creates, changes or removes anything outside the root it is
// given, whatever the tar holds. Every path an entry names (its own name, a hard link's target, a
// whiteout's victim) is resolved with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) against a
// file descriptor of the root, so ".." stops at the root and symlinks, absolute or relative,
// resolve as if the root were "/" (chroot semantics). Files are then created relative to the
// resolved parent's descriptor with O_NOFOLLOW/AT_SYMLINK_NOFOLLOW, never through joined path
// strings. Names that climb out lexically ("../x", "a/../../x", "/../x", a whiteout of "..") are
// rejected with errdefs.ErrInvalidArgument; absolute names ("/etc/x") are taken relative to the
// root; absolute symlinks are created verbatim.
//
// Errors. Every error wraps one errdefs class: a malformed or hostile tar (including a tar that
// conflicts with the tree, such as a path below a regular file) is ErrInvalidArgument, carrying
// the tar package's text ("invalid tar header", "unexpected EOF"); a refused operation (EPERM,
// EACCES, EROFS) is ErrNotSupported; a full disk or quota (ENOSPC, EDQUOT) is ErrUnavailable; EIO
// is ErrCorrupt. The system error stays wrapped too, so errors.Is(err, unix.ENOSPC) holds.
// Context cancellation is returned as the context's error, wrapped with the operation.
//
// Nothing here syncs: callers that need durability sync the layer directory themselves.
package archive
