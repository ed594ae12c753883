package btrfsdriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// Create makes layer id: an empty subvolume (root 0555, 0:0) for a base layer, or a writable
// snapshot of the parent's subvolume. A size ("size" storage option, else the parent's size,
// else btrfs.size for a read-write layer) becomes a qgroup limit and is recorded in
// Home/quotas/<id>. The subvolume appears atomically; if a later step fails it is deleted again,
// so a failed Create leaves nothing of id.
func (d *Driver) Create(ctx context.Context, id, parent string, opts pluginapi.CreateOpts) error {
	st, err := d.state()
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	size, err := driverkit.StorageSize(opts.StorageOpt)
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if size > 0 && st.opts.minSpace > 0 && size < st.opts.minSpace {
		return fmt.Errorf("create layer %s: size %d is less than btrfs.min_space %d: %w", id, size, st.opts.minSpace, errdefs.ErrInvalidArgument)
	}

	var parentPath string
	if parent != "" {
		if parentPath, err = st.lookup(parent); err != nil {
			return fmt.Errorf("create layer %s: parent: %w", id, err)
		}
		if size == 0 {
			if size, _, err = st.readQuota(parent); err != nil {
				return fmt.Errorf("create layer %s: %w", id, err)
			}
		}
	}
	if size == 0 && opts.ReadWrite {
		size = st.opts.defaultSize
	}

	p := st.layerPath(id)
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("create layer %s: %w", id, errdefs.ErrAlreadyExists)
	}
	if parent == "" {
		err = subvolCreate(st.subvolumesDir(), id)
	} else {
		err = snapshotCreate(parentPath, st.subvolumesDir(), id)
	}
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create layer %s: %w", id, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := st.finishCreate(id, p, parent == "", size); err != nil {
		return errors.Join(fmt.Errorf("create layer %s: %w", id, err), st.remove(id))
	}
	return nil
}

func (st *state) finishCreate(id, p string, base bool, size uint64) error {
	if base {
		if err := os.Chown(p, 0, 0); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o555); err != nil {
			return err
		}
	}
	if size > 0 {
		return st.setQuota(id, p, size)
	}
	return nil
}

// Remove deletes layer id's subvolume with every subvolume nested in it (deepest first), its
// qgroups and its quota record. A missing layer is not an error.
func (d *Driver) Remove(ctx context.Context, id string) error {
	st, err := d.state()
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if err := st.remove(id); err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	return nil
}

func (st *state) remove(id string) error {
	p := st.layerPath(id)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return st.removeQuota(id)
	}
	if err := deleteSubvolumeTree(p, st.quotaEnabled()); err != nil {
		return err
	}
	return st.removeQuota(id)
}

// deleteSubvolumeTree deletes the subvolume at p and every subvolume nested anywhere in it. A
// plain directory at p (left by an interrupted create) is removed as a directory tree. With
// qgroups, the level-0 qgroups of the deleted subvolumes are destroyed as far as the kernel
// allows (it refuses while it still accounts the deleted subvolume; such a stale qgroup is
// harmless).
func deleteSubvolumeTree(p string, qgroups bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	if st.Ino != firstFreeObjectID {
		return removeAll(p)
	}
	// Nested subvolumes first, the deepest first: a subvolume holding another cannot be deleted.
	var nested []string
	err := filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == p || !e.IsDir() {
			return nil
		}
		var s unix.Stat_t
		if err := unix.Lstat(path, &s); err != nil {
			return &os.PathError{Op: "lstat", Path: path, Err: err}
		}
		if s.Ino == firstFreeObjectID {
			nested = append(nested, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find nested subvolumes of %s: %w", p, err)
	}
	sort.Slice(nested, func(i, j int) bool {
		return strings.Count(nested[i], "/") > strings.Count(nested[j], "/")
	})
	home := filepath.Dir(p)
	for _, n := range append(nested, p) {
		var id uint64
		if qgroups {
			id, _ = subvolID(n)
		}
		if err := subvolDestroy(filepath.Dir(n), filepath.Base(n)); err != nil {
			return err
		}
		if id != 0 {
			_ = qgroupDestroy(home, id)
		}
	}
	return nil
}

// removeAll removes a directory tree whatever its modes.
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
		if e != nil && e.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// Get returns layer id's subvolume; btrfs mounts nothing. Mount options are refused
// (ErrNotSupported), as by the established driver.
func (d *Driver) Get(ctx context.Context, id string, opts pluginapi.MountOpts) (string, error) {
	st, err := d.state()
	if err != nil {
		return "", fmt.Errorf("get layer %s: %w", id, err)
	}
	p, err := st.lookup(id)
	if err != nil {
		return "", fmt.Errorf("get layer %s: %w", id, err)
	}
	if len(opts.Options) > 0 {
		return "", fmt.Errorf("get layer %s: btrfs driver does not support mount options %q: %w", id, opts.Options, errdefs.ErrNotSupported)
	}
	return p, nil
}

// Put does nothing: Get mounted nothing.
func (d *Driver) Put(ctx context.Context, id string) error {
	if _, err := d.state(); err != nil {
		return fmt.Errorf("put layer %s: %w", id, err)
	}
	return nil
}
