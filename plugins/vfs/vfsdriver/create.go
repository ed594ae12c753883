package vfsdriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// Create makes layer id as a copy of parent (or an empty 0555 root-owned directory for a base
// layer). The copy is built in a holder directory under staging/ and renamed to dir/<id> without
// replacing anything, so on any error, a cancelled ctx or a crash, dir/<id> does not exist.
func (d *Driver) Create(ctx context.Context, id, parent string, opts pluginapi.CreateOpts) (retErr error) {
	st, err := d.state()
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("create layer: %w", err)
	}
	keys := make([]string, 0, len(opts.StorageOpt))
	for k := range opts.StorageOpt {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "size" {
			return fmt.Errorf("create layer %s: storage option %s: vfs has no quota: %w", id, k, errdefs.ErrNotSupported)
		}
		return fmt.Errorf("create layer %s: storage option %s: unknown to vfs: %w", id, k, errdefs.ErrInvalidArgument)
	}
	if _, err := st.lookup(id); err == nil {
		return fmt.Errorf("create layer %s: %w", id, errdefs.ErrAlreadyExists)
	}
	var parentDir string
	if parent != "" {
		if parentDir, err = st.lookup(parent); err != nil {
			return fmt.Errorf("create layer %s: parent %w", id, err)
		}
	}

	h, err := st.newHolder("create-")
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	defer func() {
		if err := h.release(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("create layer %s: clean staging: %w", id, err))
		}
	}()
	work := filepath.Join(h.dir, "layer")
	if err := os.Mkdir(work, 0o700); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if parentDir == "" {
		if err := os.Lchown(work, 0, 0); err != nil && !st.opts.ignoreChownErrors {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
		if err := os.Chmod(work, 0o555); err != nil {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
	} else if err := copyTree(ctx, parentDir, work, st.opts.ignoreChownErrors); err != nil {
		return fmt.Errorf("create layer %s: copy parent %s: %w", id, parent, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := renameNoReplace(work, st.layerPath(id)); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("create layer %s: %w", id, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	return nil
}

// Remove deletes layer id from Home: it renames dir/<id> into a holder directory (the layer is
// gone from that moment), then deletes it. A layer that does not exist, or exists only in an
// image store, is not an error.
func (d *Driver) Remove(ctx context.Context, id string) (retErr error) {
	st, err := d.state()
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("remove layer: %w", err)
	}
	p := st.layerPath(id)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	h, err := st.newHolder("remove-")
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	defer func() {
		if err := h.release(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("remove layer %s: %w", id, err))
		}
	}()
	if err := os.Rename(p, filepath.Join(h.dir, "layer")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	return nil
}

// renameNoReplace renames old to new, failing with EEXIST if new exists (even as an empty
// directory, which plain rename(2) would silently replace).
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A file system without RENAME_NOREPLACE: check, then rename. Only a concurrent
		// Create of the same ID can slip between the two.
		if _, err := os.Lstat(new); err == nil {
			return &os.LinkError{Op: "rename", Old: old, New: new, Err: unix.EEXIST}
		}
		return os.Rename(old, new)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}

// holder is a directory under staging/ that one call works in, locked with flock for as long as
// that call runs. A holder whose lock is free belongs to a dead process.
type holder struct {
	dir string
	f   *os.File
}

func (st *state) newHolder(prefix string) (*holder, error) {
	dir, err := os.MkdirTemp(st.stagingDir(), prefix)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("lock staging dir %s: %w", dir, err), os.RemoveAll(dir))
	}
	return &holder{dir: dir, f: f}, nil
}

// release deletes the holder and what it still contains, then drops the lock.
func (h *holder) release() error {
	err := os.RemoveAll(h.dir)
	return errors.Join(err, h.f.Close())
}

// sweepStaging deletes every holder directory whose lock can be taken: its creator died (a crash
// or SIGKILL mid-Create or mid-Remove). Holders of live calls, in this or another process, stay.
func (st *state) sweepStaging() error {
	entries, err := os.ReadDir(st.stagingDir())
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(st.stagingDir(), e.Name())
		f, err := os.Open(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			continue // a live call owns it
		}
		errs = append(errs, os.RemoveAll(p), f.Close())
	}
	return errors.Join(errs...)
}
