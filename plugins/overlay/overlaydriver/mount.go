package overlaydriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// Get mounts layer id at <home>/<id>/merged and returns that path. It is idempotent: when an
// overlay is already mounted there (by an earlier Get, maybe of an earlier plugin process) that
// path is returned as it is, whatever options it was mounted with.
//
// A read-write mount has diff/ as upper. A read-only mount (opts.ReadOnly or "ro") stacks diff/
// on top of the lowers with no upper; when that would exceed the 500-layer stack limit it uses
// the read-write layout mounted read-only instead. merged/ and missing l/ links are recreated.
func (d *Driver) Get(ctx context.Context, id string, opts pluginapi.MountOpts) (string, error) {
	done, err := d.begin("mount layer", id)
	if err != nil {
		return "", err
	}
	defer done()
	return d.get(id, opts)
}

// get is Get for a caller holding id's lock.
func (d *Driver) get(id string, opts pluginapi.MountOpts) (string, error) {
	if err := d.mustExist("mount layer", id); err != nil {
		return "", err
	}
	dir := d.dir(id)
	merged := filepath.Join(dir, mergedDirName)
	if m, err := mountAt(merged); err != nil {
		return "", fmt.Errorf("mount layer %s: %w", id, err)
	} else if isOverlayMount(m) {
		return merged, nil
	}
	for _, sub := range []string{mergedDirName, "work"} {
		err := os.Mkdir(filepath.Join(dir, sub), 0o700)
		if err == nil {
			logger().Warn("recreated missing directory", "layer", id, "dir", sub)
		} else if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("mount layer %s: recreate %s: %w", id, sub, err)
		}
	}
	if _, err := d.ensureLink(id); err != nil {
		return "", fmt.Errorf("mount layer %s: %w", id, err)
	}
	lowers, err := d.resolvedLowers(id)
	if err != nil {
		return "", fmt.Errorf("mount layer %s: %w", id, err)
	}

	mountOpts := append(driverkit.SplitList(d.cfg.mountOpts), opts.Options...)
	readOnly := opts.ReadOnly || slices.Contains(mountOpts, "ro")
	if d.cfg.mountProgram != "" && d.cfg.forceMask != nil {
		mountOpts = append(mountOpts, "xattr_permissions=2")
	}
	s := overlaySpec{dir: d.home, target: filepath.Join(id, mergedDirName), opts: mountOpts, label: opts.MountLabel}
	switch {
	case readOnly && len(lowers)+1 <= maxLowers:
		s.lowers = append([]string{filepath.Join(id, "diff")}, lowers...)
		if len(lowers) == 0 {
			s.lowers = append(s.lowers, filepath.Join(id, "empty"))
			if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o700); err != nil {
				return "", fmt.Errorf("mount layer %s: %w", id, err)
			}
		}
	default:
		if readOnly && !slices.Contains(s.opts, "ro") {
			s.opts = append(s.opts, "ro")
		}
		s.lowers, s.upper, s.work = lowers, filepath.Join(id, "diff"), filepath.Join(id, "work")
		if len(lowers) == 0 {
			s.lowers = []string{filepath.Join(id, "empty")}
			if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o700); err != nil {
				return "", fmt.Errorf("mount layer %s: %w", id, err)
			}
		}
	}
	if d.cfg.mountProgram != "" {
		err = mountProgram(d.cfg.mountProgram, s)
	} else {
		err = mountKernel(s)
	}
	if err != nil {
		return "", fmt.Errorf("mount layer %s: %w", id, err)
	}
	return merged, nil
}

// Put unmounts layer id (every mount stacked on merged/) and then replaces merged/ atomically
// with a fresh empty directory, renaming merged.1 over it, as the established driver does (a
// merged/ that someone filled while it was not a mount point is kept). Put of a layer that is
// not mounted succeeds; Put of an unknown layer is ErrNotFound.
func (d *Driver) Put(ctx context.Context, id string) error {
	done, err := d.begin("unmount layer", id)
	if err != nil {
		return err
	}
	defer done()
	return d.put(id)
}

func (d *Driver) put(id string) error {
	if err := d.mustExist("unmount layer", id); err != nil {
		return err
	}
	dir := d.dir(id)
	merged := filepath.Join(dir, mergedDirName)
	if err := unmountAll(merged); err != nil {
		return fmt.Errorf("unmount layer %s: %w", id, err)
	}
	tmp := filepath.Join(dir, mergedTempName)
	_ = os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("unmount layer %s: %w", id, err)
	}
	if err := os.Rename(tmp, merged); err != nil {
		// merged/ holds files written while it was not a mount point: keep it, drop merged.1.
		_ = os.Remove(tmp)
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("unmount layer %s: replace %s: %w", id, mergedDirName, err)
		}
	}
	return nil
}
