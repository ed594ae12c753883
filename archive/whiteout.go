package archive

import (
	"archive/tar"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// whiteout applies the whiteout entry parentRel/base (base starts with ".wh.").
//
// WhiteoutOCI performs the deletion: ".wh.x" removes x, the opaque marker removes everything in
// the directory that this tar did not create. A whiteout whose directory does not exist (or is
// not a directory) has nothing to delete. WhiteoutOverlay records the deletion for overlay: a
// 0/0 character device, or trusted.overlay.opaque=y on the directory (created if missing).
// Other ".wh..wh." names are aufs metadata and are ignored.
func (a *applier) whiteout(hdr *tar.Header, parentRel, base string) error {
	overlay := a.opts.WhiteoutFormat == WhiteoutOverlay
	if base == opaqueMarker {
		pfd, preal, err := a.root.dir(parentRel, overlay, a.markCreated)
		if !overlay && (err == unix.ENOENT || err == unix.ENOTDIR) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("opaque directory: %w", err)
		}
		dfd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		if overlay {
			return unix.Fsetxattr(dfd, overlayOpaqueXattr, []byte("y"), 0)
		}
		a.root.invalidate()
		return a.opaque(dfd, preal)
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil
	}
	name := base[len(whiteoutPrefix):]
	if name == "" || name == "." || name == ".." {
		return invalid("whiteout %q names no removable entry", base)
	}
	pfd, preal, err := a.root.dir(parentRel, overlay, a.markCreated)
	if !overlay && (err == unix.ENOENT || err == unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("whiteout directory: %w", err)
	}
	if err := removeAllAt(pfd, name); err != nil {
		return fmt.Errorf("remove whited-out %q: %w", name, err)
	}
	a.root.invalidate()
	rel := joinRel(preal, name)
	if !overlay {
		delete(a.unpacked, rel)
		return nil
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return err
	}
	a.unpacked[rel] = struct{}{}
	if a.opts.ForceMask == nil {
		if err := a.chown(unix.Fchownat(pfd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
			return err
		}
	}
	return nil
}

// opaque empties directory fd (whose relative path is rel), keeping what this tar created: a
// created directory is kept and emptied the same way.
func (a *applier) opaque(fd int, rel string) error {
	var keepDirs []string
	err := removeChildren(fd, func(name string) bool {
		if _, ok := a.unpacked[joinRel(rel, name)]; !ok {
			return false
		}
		var st unix.Stat_t
		if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			keepDirs = append(keepDirs, name)
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, name := range keepDirs {
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = a.opaque(cfd, joinRel(rel, name))
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}
