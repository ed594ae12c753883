package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ExportChanges writes to w a layer tar holding changes, in the given order, with content read
// from dir: an Add or Modify is the file's entry (with its content; a directory's entry without
// its children); a Delete of /a/b is the entry "a/.wh.b" (an empty regular file with a zero
// time, so the same changes give the same bytes). Parent directories of a changed path are not
// added unless they are changes themselves. Hard links among the exported files are kept as tar
// hard links. Paths are resolved inside dir (symlinks cannot lead out of it).
func ExportChanges(ctx context.Context, dir string, changes []Change, w io.Writer) error {
	ir, err := openInRoot(dir)
	if err != nil {
		return fmt.Errorf("export changes of %s: %w", dir, err)
	}
	defer ir.close()
	tw := newTarWriter(w)
	defer tw.release()
	for _, c := range changes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export changes of %s: %w", dir, err)
		}
		if err := exportChange(ir, tw, c); err != nil {
			return fmt.Errorf("export changes of %s: %s: %w", dir, c, classifyTree(err))
		}
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("export changes of %s: %w", dir, classifyTree(err))
	}
	return nil
}

func exportChange(ir *inRoot, tw *tarWriter, c Change) error {
	rel, err := cleanName(c.Path)
	if err != nil {
		return err
	}
	if rel == "" {
		return invalid("a change of the layer root cannot be exported")
	}
	switch c.Kind {
	case ChangeDelete:
		dir, base := path.Split(rel)
		return tw.tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     dir + whiteoutPrefix + base,
			ModTime:  time.Unix(0, 0),
		})
	case ChangeAdd, ChangeModify:
		parent, base := splitRel(rel)
		pfd, _, err := ir.dir(parent, false, nil)
		if err != nil {
			return err
		}
		m, err := readMeta(pfd, base)
		if err != nil {
			return err
		}
		return tw.add(rel, pfd, base, m, WhiteoutOCI)
	}
	return invalid("unknown change kind %d", int(c.Kind))
}

// ChangesSize returns the bytes of regular-file content of the Add and Modify changes in dir,
// counting a file with several hard links once. Paths that no longer exist are skipped.
func ChangesSize(dir string, changes []Change) (int64, error) {
	ir, err := openInRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("size of changes of %s: %w", dir, err)
	}
	defer ir.close()
	var size int64
	seen := map[devIno]struct{}{}
	for _, c := range changes {
		if c.Kind != ChangeAdd && c.Kind != ChangeModify {
			continue
		}
		rel, err := cleanName(c.Path)
		if err != nil {
			return 0, fmt.Errorf("size of changes of %s: %w", dir, err)
		}
		parent, base := splitRel(strings.TrimSuffix(rel, "/"))
		if base == "" {
			continue
		}
		var st unix.Stat_t
		pfd, _, err := ir.dir(parent, false, nil)
		if err == nil {
			err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err == unix.ENOENT || err == unix.ENOTDIR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("size of changes of %s: %s: %w", dir, c.Path, classifyTree(err))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		if st.Nlink > 1 {
			key := devIno{uint64(st.Dev), st.Ino}
			if _, ok := seen[key]; ok {
				continue
			}
			seen[key] = struct{}{}
		}
		size += st.Size
	}
	return size, nil
}
