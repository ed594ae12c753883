package vfsdriver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// treeCopier copies a directory tree, preserving everything a layer carries: file types
// (directories, regular files, symlinks, devices, fifos, sockets), mode bits including setuid,
// setgid and sticky, owners, access and modification times, extended attributes (including
// security.capability) and hard links between files of the tree.
//
// Regular file contents are reflinked (FICLONE) where the file system can, otherwise copied in
// the kernel with copy_file_range, otherwise read and written; holes of sparse files are kept.
// A copier is used by one goroutine.
type treeCopier struct {
	// ignoreChownErrors makes a failed chown (EPERM, EINVAL: an ID the user namespace cannot
	// map) leave the file owned by the caller instead of failing the copy.
	ignoreChownErrors bool

	// links maps the source (device, inode) of a non-directory with more than one link to the
	// first destination path written for it.
	links map[devIno]string
	// noClone and noCopyRange remember that the file system refused FICLONE or copy_file_range,
	// so the remaining files skip straight to the next method.
	noClone, noCopyRange bool
	buf                  []byte
}

type devIno struct {
	dev, ino uint64
}

// copyTree copies the contents and the metadata of directory src into directory dst, which must
// exist and be empty. dst's own metadata (mode, owner, xattrs, times) is set from src's last.
func copyTree(ctx context.Context, src, dst string, ignoreChownErrors bool) error {
	c := &treeCopier{ignoreChownErrors: ignoreChownErrors, links: map[devIno]string{}}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("copy %s: not a directory", src)
	}
	return c.copyDir(ctx, src, dst, &st)
}

// copyDir copies the children of src into the existing directory dst, then dst's metadata.
// Directory metadata is applied after the children so that a read-only mode does not stop the
// copy and the children's creation does not disturb the copied modification time.
func (c *treeCopier) copyDir(ctx context.Context, src, dst string, st *unix.Stat_t) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		s := filepath.Join(src, e.Name())
		d := filepath.Join(dst, e.Name())
		if err := c.copyEntry(ctx, s, d); err != nil {
			return err
		}
	}
	return c.setMetadata(src, dst, st, true)
}

// copyEntry copies one entry of any type from s to the not yet existing path d.
func (c *treeCopier) copyEntry(ctx context.Context, s, d string) error {
	var st unix.Stat_t
	if err := unix.Lstat(s, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: s, Err: err}
	}
	typ := st.Mode & unix.S_IFMT
	if typ == unix.S_IFDIR {
		if err := unix.Mkdir(d, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: d, Err: err}
		}
		return c.copyDir(ctx, s, d, &st)
	}
	if st.Nlink > 1 {
		key := devIno{dev: uint64(st.Dev), ino: st.Ino}
		if first, ok := c.links[key]; ok {
			if err := unix.Linkat(unix.AT_FDCWD, first, unix.AT_FDCWD, d, 0); err != nil {
				return &os.LinkError{Op: "link", Old: first, New: d, Err: err}
			}
			return nil
		}
		c.links[key] = d
	}
	switch typ {
	case unix.S_IFREG:
		if err := c.copyFile(s, d, &st); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(s)
		if err != nil {
			return err
		}
		if err := unix.Symlink(target, d); err != nil {
			return &os.LinkError{Op: "symlink", Old: target, New: d, Err: err}
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(d, typ|0o600, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: d, Err: err}
		}
	default:
		return fmt.Errorf("copy %s: unknown file type %#o", s, typ)
	}
	return c.setMetadata(s, d, &st, false)
}

// copyFile creates d (exclusively) with the contents of s, whose lstat is st. Holes of a sparse
// file stay holes.
func (c *treeCopier) copyFile(s, d string, st *unix.Stat_t) (retErr error) {
	in, err := os.OpenFile(s, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(d, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err := out.Close(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	if st.Size == 0 {
		return nil
	}
	if !c.noClone {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			return nil
		}
		if !unsupported(err) {
			return &os.PathError{Op: "clone", Path: d, Err: err}
		}
		c.noClone = true
	}
	if st.Blocks*512 >= st.Size {
		return c.copyRange(in, out, 0, st.Size)
	}
	// Sparse: copy the data extents only, then set the size (a trailing hole).
	for off := int64(0); off < st.Size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			if unsupported(err) {
				return c.copyRange(in, out, off, st.Size-off)
			}
			return &os.PathError{Op: "seek data", Path: s, Err: err}
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return &os.PathError{Op: "seek hole", Path: s, Err: err}
		}
		if err := c.copyRange(in, out, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(st.Size)
}

// copyRange copies n bytes at offset off of in to the same offset of out: in the kernel with
// copy_file_range where possible, else through a buffer. A source shorter than off+n is not an
// error (the file shrank after its stat).
func (c *treeCopier) copyRange(in, out *os.File, off, n int64) error {
	for n > 0 && !c.noCopyRange {
		roff, woff := off, off
		m, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(min(n, 1<<30)), 0)
		if err != nil {
			if !unsupported(err) {
				return &os.PathError{Op: "copy_file_range", Path: out.Name(), Err: err}
			}
			c.noCopyRange = true
			break
		}
		if m == 0 {
			return nil
		}
		off += int64(m)
		n -= int64(m)
	}
	if c.buf == nil && n > 0 {
		c.buf = make([]byte, 1<<20)
	}
	for n > 0 {
		m, err := in.ReadAt(c.buf[:min(n, int64(len(c.buf)))], off)
		if m > 0 {
			if _, werr := out.WriteAt(c.buf[:m], off); werr != nil {
				return werr
			}
			off += int64(m)
			n -= int64(m)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unsupported reports whether err means "this file system (pair) cannot do that", as opposed to
// an I/O error.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTTY) ||
		errors.Is(err, unix.EBADF)
}

// setMetadata gives d the owner, mode, xattrs and times of s. The order matters: chown clears
// setuid/setgid bits and security.capability, so it comes first; times come last.
func (c *treeCopier) setMetadata(s, d string, st *unix.Stat_t, isDir bool) error {
	if err := unix.Lchown(d, int(st.Uid), int(st.Gid)); err != nil {
		if !c.ignoreChownErrors || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)) {
			return &os.PathError{Op: "lchown", Path: d, Err: err}
		}
	}
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if !isLink {
		if err := unix.Chmod(d, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: d, Err: err}
		}
	}
	if err := copyXattrs(s, d); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, d, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: d, Err: err}
	}
	return nil
}

// copyXattrs copies every extended attribute of s to d (neither followed if a symlink). A source
// or destination file system without xattr support is not an error: there is nothing to copy or
// nowhere to keep it, as with the established tool.
func copyXattrs(s, d string) error {
	names, err := listXattrs(s)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return &os.PathError{Op: "llistxattr", Path: s, Err: err}
	}
	for _, name := range names {
		val, err := getXattr(s, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return &os.PathError{Op: "lgetxattr " + name, Path: s, Err: err}
		}
		if err := unix.Lsetxattr(d, name, val, 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
				continue
			}
			return &os.PathError{Op: "lsetxattr " + name, Path: d, Err: err}
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range splitNul(buf[:n]) {
			names = append(names, string(b))
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func splitNul(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, b[start:i])
			}
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, b[start:])
	}
	return out
}
