package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(&command{
		names:       []string{"copy"},
		optionsHelp: "[options [...]] [sourceLayerNameOrID:]/path [...] targetLayerNameOrID:/path",
		usage:       "Copy files or directories into a layer, possibly from another layer",
		minArgs:     2,
		maxArgs:     -1,
		action:      copyContent,
		addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
			fs.StringVarP(&f.chown, "chown", "o", "", "Set owner on new copies")
			addJSON(fs, f)
		},
	})
}

// owner is a UID/GID pair forced on every copied entry (--chown).
type owner struct{ uid, gid int }

func parseChown(s string) (*owner, error) {
	if s == "" {
		return nil, nil
	}
	uidStr, gidStr, ok := strings.Cut(s, ":")
	if !ok {
		gidStr = uidStr
	}
	uid, err := strconv.ParseUint(uidStr, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("bad UID: %w", err)
	}
	gid, err := strconv.ParseUint(gidStr, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("bad GID: %w", err)
	}
	return &owner{uid: int(uid), gid: int(gid)}, nil
}

// copyContent copies each source (a host path, or LAYER:/path inside a layer) to the target
// LAYER:/path (or host path), the way `tar c | tar x` would: a directory's contents are merged
// into the target directory, a file is written at the target path (into it, when the target
// ends with a slash). Layers are mounted for the copy and unmounted afterwards; an unmount
// failure is reported on stderr without changing the exit code. Layers with ID mappings do not
// exist in this store, so no ID translation is needed.
func copyContent(inv *invocation, args []string) (int, error) {
	chown, err := parseChown(inv.flags.chown)
	if err != nil {
		return 1, err
	}
	target, cleanup, err := inv.resolveCopyPath(args[len(args)-1])
	defer cleanup()
	if err != nil {
		return 1, err
	}
	for _, spec := range args[:len(args)-1] {
		source, release, err := inv.resolveCopyPath(spec)
		if err != nil {
			release()
			return 1, err
		}
		err = copyTree(source, target, chown)
		release()
		if err != nil {
			return 1, fmt.Errorf("error copying %q to %q: %w", source, target, err)
		}
	}
	return 0, nil
}

// resolveCopyPath turns LAYER:/path into a path under the layer's mount point, mounting it.
// The returned function unmounts it again (and is always safe to call).
func (inv *invocation) resolveCopyPath(spec string) (string, func(), error) {
	layerRef, rel, ok := strings.Cut(spec, ":")
	if !ok {
		return spec, func() {}, nil
	}
	l, err := inv.store.Layer(layerRef)
	if err != nil {
		return "", func() {}, fmt.Errorf("error finding layer %q: %w", layerRef, err)
	}
	mnt, err := inv.store.Mount(inv.ctx, l.ID, core.MountOptions{MountLabel: l.MountLabel})
	if err != nil {
		return "", func() {}, fmt.Errorf("error mounting layer %q: %w", l.ID, err)
	}
	release := func() {
		if _, err := inv.store.Unmount(inv.ctx, l.ID, false); err != nil {
			inv.eprintf("error unmounting layer %q: %+v\n", l.ID, err)
		}
	}
	path := filepath.Join(mnt, rel)
	if strings.HasSuffix(rel, "/") {
		path += "/"
	}
	return path, release, nil
}

// copyTree copies src to dst as described for copyContent.
func copyTree(src, dst string, chown *owner) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		if strings.HasSuffix(dst, "/") {
			dst = filepath.Join(dst, filepath.Base(src))
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		c := &copier{chown: chown, links: map[uint64]string{}}
		return c.entry(src, dst, st)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	c := &copier{chown: chown, links: map[uint64]string{}}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return c.entry(path, filepath.Join(dst, rel), info)
	})
	if err != nil {
		return err
	}
	// Directory times last, since filling a directory changes its mtime.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := os.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

type dirTime struct {
	path  string
	mtime time.Time
}

// copier copies single entries, keeping hard links between copied files.
type copier struct {
	chown *owner
	links map[uint64]string // inode of a copied multi-link file -> its copy
	dirs  []dirTime
}

func (c *copier) entry(src, dst string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat information", src)
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if c.chown != nil {
		uid, gid = c.chown.uid, c.chown.gid
	}
	mode := info.Mode()
	if mode.IsDir() {
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		c.dirs = append(c.dirs, dirTime{dst, info.ModTime()})
		return c.finish(src, dst, uid, gid, mode)
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	switch {
	case mode.IsRegular():
		if st.Nlink > 1 {
			if first, seen := c.links[st.Ino]; seen {
				return os.Link(first, dst)
			}
			c.links[st.Ino] = dst
		}
		if err := copyFileData(src, dst); err != nil {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return os.Lchown(dst, uid, gid)
	case mode&fs.ModeSocket != 0:
		return nil // tar skips sockets
	default: // devices and FIFOs
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	if err := c.finish(src, dst, uid, gid, mode); err != nil {
		return err
	}
	return os.Chtimes(dst, info.ModTime(), info.ModTime())
}

// finish sets owner, permission bits (after chown, which clears set-id bits) and the file
// capability xattr.
func (c *copier) finish(src, dst string, uid, gid int, mode fs.FileMode) error {
	if err := os.Lchown(dst, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(dst, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	buf := make([]byte, 1024)
	if n, err := unix.Lgetxattr(src, "security.capability", buf); err == nil && n > 0 {
		if err := unix.Lsetxattr(dst, "security.capability", buf[:n], 0); err != nil {
			return err
		}
	}
	return nil
}

func copyFileData(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
