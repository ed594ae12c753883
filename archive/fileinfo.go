package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// fileMeta is what Tar, Changes and ExportChanges know of one file, read without following
// symlinks.
type fileMeta struct {
	st     unix.Stat_t
	target string            // symlink target
	xattrs map[string]string // nil when the file has none
}

func (m *fileMeta) typ() uint32 { return m.st.Mode & unix.S_IFMT }
func (m *fileMeta) isDir() bool { return m.typ() == unix.S_IFDIR }

// readMeta reads name (one element) in directory dirfd.
func readMeta(dirfd int, name string) (*fileMeta, error) {
	m := &fileMeta{}
	if err := unix.Fstatat(dirfd, name, &m.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, err
	}
	if m.typ() == unix.S_IFLNK {
		buf := make([]byte, 256)
		for {
			n, err := unix.Readlinkat(dirfd, name, buf)
			if err != nil {
				return nil, err
			}
			if n < len(buf) {
				m.target = string(buf[:n])
				break
			}
			buf = make([]byte, 2*len(buf))
		}
	}
	x, err := readXattrs(procPath(dirfd, name))
	if err != nil {
		return nil, err
	}
	m.xattrs = x
	return m, nil
}

func readXattrs(p string) (map[string]string, error) {
	var buf []byte
	for {
		sz, err := unix.Llistxattr(p, nil)
		if err == unix.ENOTSUP || sz == 0 {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		buf = make([]byte, sz)
		sz, err = unix.Llistxattr(p, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		buf = buf[:sz]
		break
	}
	out := map[string]string{}
	for _, name := range bytes.Split(buf, []byte{0}) {
		if len(name) == 0 {
			continue
		}
		k := string(name)
		for {
			sz, err := unix.Lgetxattr(p, k, nil)
			if err == unix.ENODATA {
				break
			}
			if err != nil {
				return nil, err
			}
			v := make([]byte, sz)
			sz, err = unix.Lgetxattr(p, k, v)
			if err == unix.ERANGE {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[k] = string(v[:sz])
			break
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// walkFunc is called for every entry below the walked root, in sorted order, a directory before
// its children. rel is the entry's path relative to the root; dirfd/name locate it.
type walkFunc func(rel string, dirfd int, name string, m *fileMeta) error

// walkTree walks the tree under root without following symlinks, by directory descriptors.
func walkTree(root string, fn walkFunc) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(fd)
	return walkDir(fd, "", fn)
}

func walkDir(fd int, rel string, fn walkFunc) error {
	names, err := readDirNames(fd)
	if err != nil {
		return &os.PathError{Op: "readdir", Path: rel, Err: err}
	}
	sort.Strings(names)
	for _, name := range names {
		crel := joinRel(rel, name)
		m, err := readMeta(fd, name)
		if err != nil {
			if err == unix.ENOENT {
				continue // removed while walking
			}
			return &os.PathError{Op: "stat", Path: crel, Err: err}
		}
		if err := fn(crel, fd, name, m); err != nil {
			return err
		}
		if !m.isDir() {
			continue
		}
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: crel, Err: err}
		}
		err = walkDir(cfd, crel, fn)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// tarHeader builds the header of the file rel. It returns nil for files a tar cannot hold
// (sockets). Times are truncated to seconds, as the established tool writes them, so headers
// stay plain USTAR unless names or xattrs need PAX.
func tarHeader(rel string, m *fileMeta) *tar.Header {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(m.st.Mode & 0o7777),
		Uid:     int(m.st.Uid),
		Gid:     int(m.st.Gid),
		ModTime: time.Unix(m.st.Mtim.Sec, 0),
	}
	switch m.typ() {
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = m.st.Size
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = m.target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if m.typ() == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(m.st.Rdev))
		hdr.Devminor = int64(unix.Minor(m.st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil
	}
	for k, v := range m.xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattrPrefix+k] = v
	}
	return hdr
}

// isOverlayWhiteout reports whether m is overlay's whiteout, a 0/0 character device.
func (m *fileMeta) isOverlayWhiteout() bool { return m.typ() == unix.S_IFCHR && m.st.Rdev == 0 }

// dropOverlayXattrs removes overlay's own xattrs from hdr (they describe the upper dir, not
// the layer).
func dropOverlayXattrs(hdr *tar.Header) {
	for k := range hdr.PAXRecords {
		if isOverlayXattr(strings.TrimPrefix(k, paxXattrPrefix)) {
			delete(hdr.PAXRecords, k)
		}
	}
	if len(hdr.PAXRecords) == 0 {
		hdr.PAXRecords = nil
	}
}
