package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// TarOptions are the knobs of Tar.
type TarOptions struct {
	// WhiteoutFormat is the format deletions are kept in under the tree. With WhiteoutOverlay,
	// 0/0 character devices become ".wh.<name>" entries and a directory with
	// trusted.overlay.opaque=y becomes the directory plus "<dir>/.wh..wh..opq"; overlay's own
	// xattrs are not written.
	WhiteoutFormat WhiteoutFormat
}

// Tar writes the whole tree under dir (not dir itself) to w as a layer tar: entries in sorted
// walk order, names relative without "./", directories with a trailing "/", hard links among
// the tree's files as tar hard links, xattrs as PAX "SCHILY.xattr." records. The tree must not
// change while Tar runs.
func Tar(ctx context.Context, dir string, w io.Writer, opts TarOptions) error {
	tw := newTarWriter(w)
	defer tw.release()
	err := walkTree(dir, func(rel string, dirfd int, name string, m *fileMeta) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return tw.add(rel, dirfd, name, m, opts.WhiteoutFormat)
	})
	if err == nil {
		err = tw.tw.Close()
	}
	if err != nil {
		return fmt.Errorf("tar %s: %w", dir, classifyTree(err))
	}
	return nil
}

type devIno struct{ dev, ino uint64 }

// tarWriter writes files into a tar, turning repeated inodes into hard links.
type tarWriter struct {
	tw    *tar.Writer
	links map[devIno]string
	bp    *[]byte
}

func newTarWriter(w io.Writer) *tarWriter {
	return &tarWriter{tw: tar.NewWriter(w), links: map[devIno]string{}, bp: copyBufPool.Get().(*[]byte)}
}

func (t *tarWriter) release() { copyBufPool.Put(t.bp) }

// add writes the file rel, found as name in dirfd.
func (t *tarWriter) add(rel string, dirfd int, name string, m *fileMeta, format WhiteoutFormat) error {
	if format == WhiteoutOverlay && m.isOverlayWhiteout() {
		dir, base := path.Split(rel)
		return t.tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     dir + whiteoutPrefix + base,
			Mode:     0o600,
			Uid:      int(m.st.Uid),
			Gid:      int(m.st.Gid),
			ModTime:  tarHeader(rel, m).ModTime,
		})
	}
	hdr := tarHeader(rel, m)
	if hdr == nil {
		return nil // sockets have no tar form
	}
	var opaque bool
	if format == WhiteoutOverlay {
		opaque = m.isDir() && m.xattrs[overlayOpaqueXattr] == "y"
		dropOverlayXattrs(hdr)
	}
	if hdr.Typeflag == tar.TypeReg && m.st.Nlink > 1 {
		key := devIno{uint64(m.st.Dev), m.st.Ino}
		if first, ok := t.links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Size = 0
		} else {
			t.links[key] = rel
		}
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header of %s: %w", rel, err)
	}
	if opaque {
		err := t.tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     rel + "/" + opaqueMarker,
			Mode:     hdr.Mode & 0o777,
			Uid:      hdr.Uid,
			Gid:      hdr.Gid,
			ModTime:  hdr.ModTime,
		})
		if err != nil {
			return fmt.Errorf("write opaque marker of %s: %w", rel, err)
		}
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	n, err := io.CopyBuffer(t.tw, io.LimitReader(f, hdr.Size), *t.bp)
	if err != nil {
		return fmt.Errorf("write content of %s: %w", rel, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("write content of %s: file shrank from %d to %d bytes while being read: %w", rel, hdr.Size, n, io.ErrUnexpectedEOF)
	}
	return nil
}
