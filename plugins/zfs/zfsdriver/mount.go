package zfsdriver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/pluginapi"
)

// Get mounts layer id at Home/graph/<id> (if it is not mounted already) with zfs.mountopt, the
// call's options and "ro" for a read-only view, and returns that path.
func (d *Driver) Get(ctx context.Context, id string, opts pluginapi.MountOpts) (string, error) {
	st, err := d.state()
	if err != nil {
		return "", fmt.Errorf("get layer %s: %w", id, err)
	}
	if _, err := st.lookup(ctx, id); err != nil {
		return "", fmt.Errorf("get layer %s: %w", id, err)
	}
	mountOpts := slices.Clone(opts.Options)
	if opts.ReadOnly {
		mountOpts = append(mountOpts, "ro")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	p, err := st.mount(ctx, id, mountOpts)
	if err != nil {
		return "", fmt.Errorf("get layer %s: %w", id, err)
	}
	st.gotten[id] = true
	return p, nil
}

// Put unmounts layer id, unless the naive differ holds it (then its last release unmounts).
func (d *Driver) Put(ctx context.Context, id string) error {
	st, err := d.state()
	if err != nil {
		return fmt.Errorf("put layer %s: %w", id, err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.gotten, id)
	if st.holds[id] > 0 {
		return nil
	}
	if err := st.unmount(ctx, id); err != nil {
		return fmt.Errorf("put layer %s: %w", id, err)
	}
	return nil
}

// mounted reports whether layer id's mount point is a mount point. The caller holds st.mu.
func (st *state) mounted(id string) (bool, error) {
	ok, err := mountinfo.Mounted(st.mountPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return ok, err
}

// mount mounts layer id at its mount point unless it is mounted, and returns the mount point.
// The caller holds st.mu.
//
// Kernel OpenZFS: mount -t zfs on the legacy dataset. zfs-fuse has no mount helper: the
// dataset's mountpoint property is pointed at the mount point (canmount=noauto keeps the daemon
// from mounting it by itself) and the daemon mounts it with zfs mount, which takes -o.
func (st *state) mount(ctx context.Context, id string, extra []string) (string, error) {
	p := st.mountPath(id)
	if ok, err := st.mounted(id); err != nil || ok {
		return p, err
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	opts := strings.Join(slices.Concat(st.opts.mountOpts, extra), ",")
	ds := st.datasetName(id)
	var err error
	switch st.backend {
	case backendKernel:
		args := []string{"-t", "zfs"}
		if opts != "" {
			args = append(args, "-o", opts)
		}
		_, err = command(ctx, "mount", append(args, ds, p)...)
	case backendFuse:
		var cur string
		cur, err = st.property(ctx, ds, "mountpoint")
		if err == nil && cur != p {
			_, err = st.zfs(ctx, "set", "mountpoint="+p, ds)
		}
		if err == nil {
			args := []string{"mount"}
			if opts != "" {
				args = append(args, "-o", opts)
			}
			_, err = st.zfs(ctx, append(args, ds)...)
		}
	}
	if err != nil {
		_ = os.Remove(p)
		return "", fmt.Errorf("mount %s at %s: %w", ds, p, err)
	}
	return p, nil
}

// unmount unmounts layer id if it is mounted. The caller holds st.mu.
func (st *state) unmount(ctx context.Context, id string) error {
	ok, err := st.mounted(id)
	if err != nil || !ok {
		return err
	}
	p := st.mountPath(id)
	switch st.backend {
	case backendFuse:
		if _, err := st.zfs(ctx, "unmount", st.datasetName(id)); err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	default:
		if err := unix.Unmount(p, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return nil
}

// layerDirs gives the naive differ the contents of zfs layers. A layer that is mounted (by Get,
// or before this process started) is used where it is and its release does nothing; otherwise
// LayerDir mounts it and holds it, and the last release unmounts it unless a Get came in
// between.
type layerDirs struct{ st *state }

func (l layerDirs) LayerDir(ctx context.Context, id string) (string, func() error, error) {
	st := l.st
	if _, err := st.lookup(ctx, id); err != nil {
		return "", nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	ok, err := st.mounted(id)
	if err != nil {
		return "", nil, err
	}
	if ok && st.holds[id] == 0 {
		return st.mountPath(id), func() error { return nil }, nil
	}
	p, err := st.mount(ctx, id, nil)
	if err != nil {
		return "", nil, err
	}
	st.holds[id]++
	release := func() error {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.holds[id]--
		if st.holds[id] > 0 {
			return nil
		}
		delete(st.holds, id)
		if st.gotten[id] {
			return nil
		}
		return st.unmount(context.WithoutCancel(ctx), id)
	}
	return p, release, nil
}
