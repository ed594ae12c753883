package zfsdriver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/moby/sys/mountinfo"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// Name is the driver's stable name; the store keeps zfs mount points under <graphroot>/zfs.
const Name = "zfs"

// Version is this driver's own version, reported in Info.
const Version = "1.0.0"

var errNotInitialized = errdefs.Sentinel(errdefs.ErrUnavailable, "zfs driver not initialized")

// Driver is the zfs driver. The zero value is not usable; call New, then Init.
type Driver struct {
	// st is set by Init and replaced only by a later Init, so calls read it without a lock.
	st atomic.Pointer[state]
	// differ forwards to the state's differ (diff.go).
	differ
}

// state is what Init establishes.
type state struct {
	home    string // <graphroot>/zfs
	fsname  string // parent dataset of every layer dataset
	opts    options
	zfsPath string
	backend backend
	differ  pluginapi.Differ

	// mu serialises mounting and unmounting, and guards the two maps. They describe only mounts
	// in progress in this process: after a restart both are empty, and a mounted layer is one
	// the store mounted with Get.
	mu sync.Mutex
	// gotten holds the layers mounted by Get and not yet Put.
	gotten map[string]bool
	// holds counts the naive differ's uses of layers it had to mount; the last release
	// unmounts unless Get mounted the layer meanwhile.
	holds map[string]int
}

// New returns an uninitialized zfs driver.
func New() *Driver {
	d := &Driver{}
	d.differ = driverkit.ForwardDiffer(d.state, func(st *state) pluginapi.Differ { return st.differ })
	return d
}

var _ pluginapi.Driver = (*Driver)(nil)

func (d *Driver) info() pluginapi.Info {
	return driverkit.Info(Name, Version, pluginapi.CapQuota, pluginapi.CapReadOnlyMount)
}

// Info identifies the driver: quotas (the zfs quota property) and read-only mounts.
func (d *Driver) Info(ctx context.Context) (pluginapi.Info, error) { return d.info(), nil }

// Init validates the options, finds the zfs command and what serves it (kernel module or
// zfs-fuse daemon: neither is ErrNotSupported), finds the parent dataset (zfs.fsname, else the
// dataset mounted where the graph root is: a graph root not on ZFS is ErrNotSupported) and
// creates Home/graph for the mount points. It changes nothing when any check fails.
func (d *Driver) Init(ctx context.Context, opts pluginapi.InitOptions) (pluginapi.Info, error) {
	if opts.Home == "" {
		return pluginapi.Info{}, fmt.Errorf("init zfs driver: empty home: %w", errdefs.ErrInvalidArgument)
	}
	o, err := parseOptions(opts.Options)
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init zfs driver: %w", err)
	}
	zfsPath, b, err := detectBackend()
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init zfs driver: %w", err)
	}
	st := &state{home: opts.Home, opts: o, zfsPath: zfsPath, backend: b, gotten: map[string]bool{}, holds: map[string]int{}}
	st.fsname = o.fsname
	if st.fsname == "" {
		root := opts.GraphRoot
		if root == "" {
			root = filepath.Dir(opts.Home)
		}
		if st.fsname, err = datasetOf(root); err != nil {
			return pluginapi.Info{}, fmt.Errorf("init zfs driver: %w", err)
		}
	}
	typ, err := st.property(ctx, st.fsname, "type")
	if errors.Is(err, errdefs.ErrNotFound) {
		return pluginapi.Info{}, fmt.Errorf("init zfs driver: dataset %s (zfs.fsname) does not exist: %w", st.fsname, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init zfs driver: %w", err)
	}
	if typ != "filesystem" {
		return pluginapi.Info{}, fmt.Errorf("init zfs driver: dataset %s (zfs.fsname) is a %s, not a filesystem: %w", st.fsname, typ, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(st.graphDir(), 0o700); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init zfs driver: %w", err)
	}
	st.differ = newDiffer(st)
	d.st.Store(st)
	return d.info(), nil
}

func (d *Driver) state() (*state, error) {
	st := d.st.Load()
	if st == nil {
		return nil, errNotInitialized
	}
	return st, nil
}

func (st *state) graphDir() string             { return filepath.Join(st.home, "graph") }
func (st *state) mountPath(id string) string   { return filepath.Join(st.graphDir(), id) }
func (st *state) datasetName(id string) string { return st.fsname + "/" + id }

// datasetOf returns the ZFS dataset mounted at or above path: the source of the nearest mount,
// which must be a zfs (kernel) or fuse.zfs (zfs-fuse) mount.
func datasetOf(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(abs))
	if err != nil {
		return "", fmt.Errorf("read mount table: %w", err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return "", fmt.Errorf("graph root %s: no mount holds it: %w", path, errdefs.ErrNotSupported)
	}
	if best.FSType != "zfs" && best.FSType != "fuse.zfs" {
		return "", fmt.Errorf("graph root %s is not on zfs (found %s on %s); set zfs.fsname: %w", path, best.FSType, best.Mountpoint, errdefs.ErrNotSupported)
	}
	return best.Source, nil
}

// lookup returns the dataset of an existing layer; a missing one is ErrNotFound naming id.
func (st *state) lookup(ctx context.Context, id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	ds := st.datasetName(id)
	ok, err := st.datasetExists(ctx, ds)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	if !ok {
		return "", fmt.Errorf("layer %s: %w", id, errdefs.ErrNotFound)
	}
	return ds, nil
}

// validID refuses IDs that are not a valid single dataset name component.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 200 {
		return fmt.Errorf("layer ID %q: not a valid layer name: %w", id, errdefs.ErrInvalidArgument)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.:", r)
		if !ok {
			return fmt.Errorf("layer ID %q: character %q not allowed in a ZFS dataset name: %w", id, r, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// Exists reports whether layer id's dataset exists.
func (d *Driver) Exists(ctx context.Context, id string) (bool, error) {
	st, err := d.state()
	if err != nil {
		return false, fmt.Errorf("exists layer %s: %w", id, err)
	}
	if validID(id) != nil {
		return false, nil
	}
	ok, err := st.datasetExists(ctx, st.datasetName(id))
	if err != nil {
		return false, fmt.Errorf("exists layer %s: %w", id, err)
	}
	return ok, nil
}

// ListLayers returns the names of the datasets directly under fsname.
func (d *Driver) ListLayers(ctx context.Context) ([]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	out, err := st.zfs(ctx, "list", "-H", "-o", "name", "-t", "filesystem", "-r", "-d", "1", st.fsname)
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	ids := []string{}
	for _, line := range strings.Split(out, "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), st.fsname+"/"); ok && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Status reports the pool, its health and the parent dataset's space, as the established driver.
func (d *Driver) Status(ctx context.Context) ([][2]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	pool, _, _ := strings.Cut(st.fsname, "/")
	status := [][2]string{{"Zpool", pool}}
	health, err := command(ctx, filepath.Join(filepath.Dir(st.zfsPath), "zpool"), "list", "-H", "-o", "health", pool)
	if err != nil {
		health = "unknown (" + err.Error() + ")"
	}
	status = append(status, [2]string{"Zpool Health", health}, [2]string{"Parent Dataset", st.fsname})
	for _, p := range []struct{ label, prop string }{
		{"Space Used By Parent", "used"}, {"Space Available", "available"},
		{"Parent Quota", "quota"}, {"Compression", "compression"},
	} {
		v, err := st.property(ctx, st.fsname, p.prop)
		if err != nil {
			v = "unknown"
		}
		status = append(status, [2]string{p.label, v})
	}
	return append(status, [2]string{"Backend", st.backend.String()}), nil
}

// Metadata returns the layer's dataset and mount point.
func (d *Driver) Metadata(ctx context.Context, id string) (map[string]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
	}
	ds, err := st.lookup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
	}
	return map[string]string{"Dataset": ds, "Mountpoint": st.mountPath(id)}, nil
}

// Cleanup unmounts every layer mounted under Home/graph.
func (d *Driver) Cleanup(ctx context.Context) error {
	st, err := d.state()
	if err != nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(st.graphDir()))
	if err != nil {
		return fmt.Errorf("cleanup zfs driver: %w", err)
	}
	var errs []error
	for _, m := range mounts {
		if m.Mountpoint == st.graphDir() {
			continue
		}
		id := filepath.Base(m.Mountpoint)
		if err := st.unmount(ctx, id); err != nil {
			errs = append(errs, err)
		}
		delete(st.gotten, id)
		delete(st.holds, id)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleanup zfs driver: %w", err)
	}
	return nil
}
