package zfsdriver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// Create makes layer id: a new dataset <fsname>/<id> for a base layer (its root then mounted
// once to become 0555, 0:0), or for a child the clone of a fresh snapshot <parent>@<nanos>. Both
// are created with mountpoint=legacy and canmount=noauto (nothing mounts them but Get) and, with
// the "size" storage option, quota=<size>. On error the dataset and the snapshot are destroyed,
// so nothing of id is left (a crash between snapshot and clone leaves the snapshot, which the
// parent's Remove destroys with it).
func (d *Driver) Create(ctx context.Context, id, parent string, opts pluginapi.CreateOpts) error {
	st, err := d.state()
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	props := []string{"-o", "mountpoint=legacy", "-o", "canmount=noauto"}
	size, err := driverkit.StorageSize(opts.StorageOpt)
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if size > 0 {
		props = append(props, "-o", "quota="+strconv.FormatUint(size, 10))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	ds := st.datasetName(id)
	if parent == "" {
		if _, err := st.zfs(ctx, append(append([]string{"create"}, props...), ds)...); err != nil {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
		if err := st.initRoot(ctx, id); err != nil {
			return errors.Join(fmt.Errorf("create layer %s: %w", id, err), st.destroy(context.WithoutCancel(ctx), id))
		}
		return nil
	}

	parentDS, err := st.lookup(ctx, parent)
	if err != nil {
		return fmt.Errorf("create layer %s: parent: %w", id, err)
	}
	if ok, err := st.datasetExists(ctx, ds); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	} else if ok {
		return fmt.Errorf("create layer %s: dataset %s: %w", id, ds, errdefs.ErrAlreadyExists)
	}
	taken := time.Now()
	snap := parentDS + "@" + strconv.FormatInt(taken.UnixNano(), 10)
	if _, err := st.zfs(ctx, "snapshot", snap); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if st.backend == backendFuse {
		// zfs-fuse keeps whole seconds of file times. A file rewritten in the child within the
		// second its parent was last written would keep the parent's size and mtime and be
		// invisible to the naive diff; past the snapshot's second, every change in the child
		// gets a later mtime than anything in the parent.
		time.Sleep(time.Until(taken.Truncate(time.Second).Add(time.Second)))
	}
	if _, err := st.zfs(ctx, append(append([]string{"clone"}, props...), snap, ds)...); err != nil {
		_, derr := st.zfs(context.WithoutCancel(ctx), "destroy", snap)
		return errors.Join(fmt.Errorf("create layer %s: %w", id, err), derr)
	}
	return nil
}

// initRoot gives a new base layer's root directory mode 0555 and owner 0:0.
func (st *state) initRoot(ctx context.Context, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	p, err := st.mount(ctx, id, nil)
	if err != nil {
		return err
	}
	err = errors.Join(os.Chown(p, 0, 0), os.Chmod(p, 0o555))
	return errors.Join(err, st.unmount(ctx, id))
}

// Remove unmounts layer id, destroys its dataset (with any snapshot of it left by an interrupted
// Create) and then the snapshot it was cloned from, and removes its mount point. A missing
// layer is not an error. A layer whose snapshots still have clones (children) is ErrInUse.
func (d *Driver) Remove(ctx context.Context, id string) error {
	st, err := d.state()
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if err := st.destroy(ctx, id); err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	return nil
}

func (st *state) destroy(ctx context.Context, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.unmount(ctx, id); err != nil {
		return err
	}
	delete(st.gotten, id)
	delete(st.holds, id)
	ds := st.datasetName(id)
	origin, err := st.property(ctx, ds, "origin")
	if errors.Is(err, errdefs.ErrNotFound) {
		return removeMountDir(st.mountPath(id))
	}
	if err != nil {
		return err
	}
	if err := st.destroyBusy(ctx, ds); err != nil {
		return err
	}
	if origin != "" && origin != "-" {
		if _, err := st.zfs(ctx, "destroy", origin); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("destroy origin snapshot: %w", err)
		}
	}
	return removeMountDir(st.mountPath(id))
}

func removeMountDir(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// destroyBusy destroys ds and its snapshots. zfs-fuse reports a dataset "busy" for a moment
// after it was unmounted while files were still open (a killed process's files are released
// asynchronously); that is retried for a few seconds. A missing dataset is not an error.
func (st *state) destroyBusy(ctx context.Context, ds string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := st.zfs(ctx, "destroy", "-r", ds)
		if err == nil || errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		if !strings.Contains(err.Error(), "busy") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
