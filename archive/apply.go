package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ApplyOptions are the knobs of Apply.
type ApplyOptions struct {
	// WhiteoutFormat says how deletions are recorded in root. WhiteoutOCI: a ".wh.x" entry removes
	// x; ".wh..wh..opq" empties the directory (keeping entries added by this same tar).
	// WhiteoutOverlay: ".wh.x" becomes a 0/0 character device x, ".wh..wh..opq" sets the xattr
	// trusted.overlay.opaque=y on the directory; trusted.overlay.* and user.overlay.* xattrs that
	// the tar itself carries are dropped, so a tar cannot steer overlay (redirects, metacopy).
	WhiteoutFormat WhiteoutFormat
	// IgnoreChownErrors ignores EPERM and EINVAL from chown (rootless without enough IDs).
	IgnoreChownErrors bool
	// ForceMask, when set, gives every entry but symlinks this permission mode and no chown; the
	// entry's real owner and mode are kept in the xattr "user.containers.override_stat" as
	// "uid:gid:0mode" (on regular files and directories: the kernel allows user.* xattrs on
	// nothing else).
	ForceMask *os.FileMode
}

const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	opaqueMarker       = ".wh..wh..opq"
	overlayOpaqueXattr = "trusted.overlay.opaque"
	overrideStatXattr  = "user.containers.override_stat"
	paxXattrPrefix     = "SCHILY.xattr."
)

// Apply extracts the uncompressed layer tar r into root (an existing directory, the layer's
// root) and returns the number of bytes of regular-file content written (the sum of the sizes
// of regular-file entries; hard links add 0).
//
// Entries replace what is in root: an existing path is removed first unless both it and the
// entry are directories. Directory times are set after the whole tar is read, so they stick.
// After the end-of-archive marker the rest of r is read and discarded, so a caller hashing r
// sees every byte. On error root is left partly extracted; the caller discards the layer.
// Apply is not safe for concurrent use on the same root.
func Apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (int64, error) {
	ir, err := openInRoot(root)
	if err != nil {
		return 0, fmt.Errorf("apply layer tar to %s: %w", root, err)
	}
	defer ir.close()
	a := &applier{root: ir, opts: opts, unpacked: map[string]struct{}{}}
	a.markCreated = func(rel string) { a.unpacked[rel] = struct{}{} }
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	a.buf = *bp
	br := getReader(r)
	defer putReader(br)

	var size int64
	tr := tar.NewReader(br)
	for {
		if err := ctx.Err(); err != nil {
			return size, fmt.Errorf("apply layer tar to %s: %w", root, err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return size, fmt.Errorf("apply layer tar to %s: read tar: %w", root, classify(err))
		}
		n, err := a.entry(hdr, tr)
		if err != nil {
			return size, fmt.Errorf("apply layer tar to %s: entry %q: %w", root, hdr.Name, classify(err))
		}
		size += n
	}
	if err := a.setDirTimes(); err != nil {
		return size, fmt.Errorf("apply layer tar to %s: %w", root, classify(err))
	}
	if _, err := io.CopyBuffer(io.Discard, br, a.buf); err != nil {
		return size, fmt.Errorf("apply layer tar to %s: read past the end of the tar: %w", root, classify(err))
	}
	return size, nil
}

type dirTime struct {
	rel          string
	atime, mtime time.Time
}

type applier struct {
	root *inRoot
	opts ApplyOptions
	buf  []byte
	// unpacked holds the relative paths this tar created (entries and the parents made for
	// them): an opaque marker keeps those.
	unpacked    map[string]struct{}
	markCreated func(string)
	dirs        []dirTime
}

func (a *applier) entry(hdr *tar.Header, tr io.Reader) (int64, error) {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return 0, nil
	}
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return 0, err
	}
	if !validID(hdr.Uid) || !validID(hdr.Gid) {
		return 0, invalid("owner %d:%d is out of range", hdr.Uid, hdr.Gid)
	}
	parentRel, base := splitRel(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return 0, a.whiteout(hdr, parentRel, base)
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return 0, invalid("the layer root can only be a directory, not type %q", hdr.Typeflag)
		}
		return 0, a.rootMeta(hdr)
	}
	pfd, preal, err := a.root.dir(parentRel, true, a.markCreated)
	if err != nil {
		return 0, fmt.Errorf("parent directory: %w", err)
	}
	tracked := joinRel(preal, base)

	if hdr.Typeflag == tar.TypeLink && sameName(hdr.Linkname, rel) {
		// A hard link to itself: nothing to do if it exists.
		var st unix.Stat_t
		return 0, unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	// Create first and look at what is in the way only on EEXIST: one syscall less per file.
	fd, err := a.create(hdr, pfd, base)
	if err == unix.EEXIST {
		var st unix.Stat_t
		serr := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && hdr.Typeflag == tar.TypeDir {
			err = nil // an existing directory is kept and gets the entry's metadata
		} else {
			if err := removeAllAt(pfd, base); err != nil {
				return 0, fmt.Errorf("remove existing: %w", err)
			}
			a.root.invalidate()
			fd, err = a.create(hdr, pfd, base)
		}
	}
	if err != nil {
		return 0, err
	}
	a.unpacked[tracked] = struct{}{}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return hdr.Size, a.regular(hdr, fd, pfd, base, tr)
	case tar.TypeDir:
		return 0, a.directory(hdr, pfd, base, rel)
	case tar.TypeSymlink:
		return 0, a.pathMeta(hdr, pfd, base, false)
	case tar.TypeLink:
		return 0, nil // the target's inode already has its metadata
	}
	return 0, a.pathMeta(hdr, pfd, base, true)
}

// create makes pfd/base as hdr says, without metadata. For a regular file it returns the open
// descriptor, which the caller closes; otherwise -1.
func (a *applier) create(hdr *tar.Header, pfd int, base string) (int, error) {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	case tar.TypeDir:
		return -1, unix.Mkdirat(pfd, base, 0o700)
	case tar.TypeSymlink:
		return -1, unix.Symlinkat(hdr.Linkname, pfd, base)
	case tar.TypeLink:
		return -1, a.hardlink(hdr, pfd, base)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		return -1, unix.Mknodat(pfd, base, mode|0o600, int(dev))
	}
	return -1, invalid("unsupported tar entry type %q", hdr.Typeflag)
}

// validID reports whether id can be a file owner: (uid_t)-1 means "unchanged" to chown.
func validID(id int) bool { return id >= 0 && id < 1<<32-1 }

// sameName reports whether the hard link target name denotes rel.
func sameName(linkname, rel string) bool {
	t, err := cleanName(linkname)
	return err == nil && t == rel
}

// regular fills the new file fd (pfd/base) and closes it.
func (a *applier) regular(hdr *tar.Header, fd, pfd int, base string, r io.Reader) error {
	err := copyToFd(fd, r, hdr.Size, a.buf)
	if err == nil {
		err = a.fdMeta(hdr, fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, base, entryTimes(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) directory(hdr *tar.Header, pfd int, base, rel string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = a.fdMeta(hdr, fd)
	unix.Close(fd)
	if err != nil {
		return err
	}
	a.dirs = append(a.dirs, dirTime{rel: rel, atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

func (a *applier) rootMeta(hdr *tar.Header) error {
	if err := a.fdMeta(hdr, a.root.fd); err != nil {
		return err
	}
	a.dirs = append(a.dirs, dirTime{rel: "", atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

func (a *applier) hardlink(hdr *tar.Header, pfd int, base string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if target == "" {
		return invalid("hard link to the layer root")
	}
	tparent, tbase := splitRel(target)
	tfd, err := a.root.openDir(tparent, false, nil)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return invalid("hard link target %q is a directory", hdr.Linkname)
	}
	// Flags 0: a symlink target is linked itself, never followed.
	return unix.Linkat(tfd, tbase, pfd, base, 0)
}

// fdMeta sets owner, mode and xattrs of an open regular file or directory.
func (a *applier) fdMeta(hdr *tar.Header, fd int) error {
	mode := uint32(hdr.Mode) & 0o7777
	if a.opts.ForceMask != nil {
		if err := unix.Fsetxattr(fd, overrideStatXattr, overrideStat(hdr), 0); err != nil {
			return fmt.Errorf("set %s: %w", overrideStatXattr, err)
		}
		mode = fileModeToUnix(*a.opts.ForceMask)
	} else if err := a.chown(unix.Fchown(fd, hdr.Uid, hdr.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	return a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) })
}

// pathMeta sets owner, mode (unless a symlink), xattrs and times of pfd/base, which is a
// symlink, device or fifo and so cannot be opened for writing.
func (a *applier) pathMeta(hdr *tar.Header, pfd int, base string, chmod bool) error {
	p := procPath(pfd, base)
	if a.opts.ForceMask != nil && chmod {
		// The kernel refuses user.* xattrs on devices and fifos (EPERM): those keep only the
		// forced mode.
		err := unix.Lsetxattr(p, overrideStatXattr, overrideStat(hdr), 0)
		if err != nil && err != unix.EPERM && err != unix.ENOTSUP {
			return fmt.Errorf("set %s: %w", overrideStatXattr, err)
		}
	} else if a.opts.ForceMask == nil {
		if err := a.chown(unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)); err != nil {
			return err
		}
	}
	if chmod {
		mode := uint32(hdr.Mode) & 0o7777
		if a.opts.ForceMask != nil {
			mode = fileModeToUnix(*a.opts.ForceMask)
		}
		// pfd/base was just created by mknodat and is not a symlink, so following is moot.
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return err
		}
	}
	if err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, base, entryTimes(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) chown(err error) error {
	if err != nil && a.opts.IgnoreChownErrors && (err == unix.EPERM || err == unix.EINVAL) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

// xattrs applies the tar's SCHILY.xattr records. File systems without xattr support (ENOTSUP)
// and namespaces the caller may not write (EPERM) are skipped, as the established tool does.
func (a *applier) xattrs(hdr *tar.Header, set func(string, []byte) error) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || name == "" {
			continue
		}
		if a.opts.WhiteoutFormat == WhiteoutOverlay && isOverlayXattr(name) {
			continue
		}
		if err := set(name, []byte(v)); err != nil {
			if err == unix.ENOTSUP || err == unix.EPERM {
				continue
			}
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// setDirTimes gives the directories of the tar their times, once nothing more is written in them.
func (a *applier) setDirTimes() error {
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		ts := []unix.Timespec{timespec(d.atime, d.mtime), timespec(d.mtime, d.mtime)}
		if d.rel == "" {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, procPath(a.root.fd, ""), ts, 0); err != nil {
				return fmt.Errorf("set times of the layer root: %w", err)
			}
			continue
		}
		parent, base := splitRel(d.rel)
		pfd, _, err := a.root.dir(parent, false, nil)
		if err == nil {
			err = unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		// A directory removed or replaced by a later entry has no times to keep.
		if err != nil && err != unix.ENOENT && err != unix.ENOTDIR {
			return fmt.Errorf("set times of %q: %w", d.rel, err)
		}
	}
	return nil
}

func entryTimes(hdr *tar.Header) []unix.Timespec {
	return []unix.Timespec{timespec(hdr.AccessTime, hdr.ModTime), timespec(hdr.ModTime, hdr.ModTime)}
}

// timespec converts t, or fallback when t is zero (tars without atime use the mtime).
func timespec(t, fallback time.Time) unix.Timespec {
	if t.IsZero() {
		t = fallback
	}
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// overrideStat is the value of user.containers.override_stat for hdr: "uid:gid:0mode".
func overrideStat(hdr *tar.Header) []byte {
	return []byte(fmt.Sprintf("%d:%d:0%o", hdr.Uid, hdr.Gid, uint32(hdr.Mode)&0o7777))
}

// fileModeToUnix converts an os.FileMode's permission and special bits to unix mode bits.
func fileModeToUnix(m os.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		mode |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		mode |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		mode |= unix.S_ISVTX
	}
	return mode
}

// copyToFd writes exactly n bytes of r to fd through buf.
func copyToFd(fd int, r io.Reader, n int64, buf []byte) error {
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		m, rerr := io.ReadFull(r, chunk)
		for off := 0; off < m; {
			w, err := unix.Write(fd, chunk[off:m])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			off += w
		}
		n -= int64(m)
		if rerr == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if rerr != nil {
			return rerr
		}
	}
	return nil
}
