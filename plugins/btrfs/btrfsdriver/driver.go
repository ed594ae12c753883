package btrfsdriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// Name is the driver's stable name; the store keeps btrfs layers under <graphroot>/btrfs.
const Name = "btrfs"

// Version is this driver's own version, reported in Info.
const Version = "1.0.0"

var errNotInitialized = errdefs.Sentinel(errdefs.ErrUnavailable, "btrfs driver not initialized")

// Driver is the btrfs driver. The zero value is not usable; call New, then Init.
type Driver struct {
	// st is set by Init and replaced only by a later Init, so calls read it without a lock.
	st atomic.Pointer[state]
	// differ forwards to the state's differ (diff.go).
	differ
}

// state is what Init establishes.
type state struct {
	home   string // <graphroot>/btrfs, a private bind mount of itself
	opts   options
	differ pluginapi.Differ
}

// New returns an uninitialized btrfs driver.
func New() *Driver {
	d := &Driver{}
	d.differ = driverkit.ForwardDiffer(d.state, func(st *state) pluginapi.Differ { return st.differ })
	return d
}

var _ pluginapi.Driver = (*Driver)(nil)

func (d *Driver) info() pluginapi.Info { return driverkit.Info(Name, Version, pluginapi.CapQuota) }

// Info identifies the driver. btrfs advertises CapQuota: qgroup accounting is switched on the
// first time a layer gets a size.
func (d *Driver) Info(ctx context.Context) (pluginapi.Info, error) { return d.info(), nil }

// Init validates the options, refuses a home that is not on btrfs (ErrNotSupported naming the
// file system found), creates Home/subvolumes and makes Home a private bind mount of itself
// unless it already is a mount point (a restarted plugin). With btrfs.min_space it enables
// quota accounting. Nothing changes on the host when the options or the file system are wrong.
func (d *Driver) Init(ctx context.Context, opts pluginapi.InitOptions) (pluginapi.Info, error) {
	if opts.Home == "" {
		return pluginapi.Info{}, fmt.Errorf("init btrfs driver: empty home: %w", errdefs.ErrInvalidArgument)
	}
	o, err := parseOptions(opts.Options)
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init btrfs driver: %w", err)
	}
	if err := checkBtrfs(opts.Home); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init btrfs driver: %w", err)
	}
	st := &state{home: opts.Home, opts: o}
	for _, p := range []string{st.home, st.subvolumesDir()} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return pluginapi.Info{}, fmt.Errorf("init btrfs driver: %w", err)
		}
	}
	if err := driverkit.MakePrivateBind(st.home); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init btrfs driver: %w", err)
	}
	if o.minSpace > 0 {
		if err := quotaEnable(st.home); err != nil {
			return pluginapi.Info{}, fmt.Errorf("init btrfs driver: %w", err)
		}
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

func (st *state) subvolumesDir() string      { return filepath.Join(st.home, "subvolumes") }
func (st *state) quotasDir() string          { return filepath.Join(st.home, "quotas") }
func (st *state) layerPath(id string) string { return filepath.Join(st.subvolumesDir(), id) }

// lookup returns the subvolume of an existing layer; a missing one is ErrNotFound naming id.
func (st *state) lookup(id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	p := st.layerPath(id)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return "", fmt.Errorf("layer %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", id, err)
	}
	return p, nil
}

// validID refuses IDs that are not a single path component: the store does not validate
// caller-supplied IDs, and a subvolume name cannot hold a slash.
func validID(id string) error {
	if !driverkit.IsDirName(id) || len(id) > 255 {
		return fmt.Errorf("layer ID %q: not a valid layer name: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkBtrfs returns ErrNotSupported unless path (or, when it does not exist yet, its nearest
// existing ancestor) is on btrfs.
func checkBtrfs(path string) error {
	p := path
	for {
		var sfs unix.Statfs_t
		err := unix.Statfs(p, &sfs)
		if errors.Is(err, unix.ENOENT) && filepath.Dir(p) != p {
			p = filepath.Dir(p)
			continue
		}
		if err != nil {
			return fmt.Errorf("statfs %s: %w", p, err)
		}
		if sfs.Type == unix.BTRFS_SUPER_MAGIC {
			return nil
		}
		name, ok := driverkit.FSName(int64(sfs.Type))
		if !ok {
			name = fmt.Sprintf("file system type %#x", sfs.Type)
		}
		return fmt.Errorf("graph root %s is not on btrfs (found %s): %w", path, name, errdefs.ErrNotSupported)
	}
}

// Cleanup undoes Init's bind mount of Home. The driver mounts nothing else.
func (d *Driver) Cleanup(ctx context.Context) error {
	st, err := d.state()
	if err != nil {
		return nil
	}
	mounted, err := mountinfo.Mounted(st.home)
	if err != nil {
		return fmt.Errorf("cleanup btrfs driver: %w", err)
	}
	if mounted {
		if err := unix.Unmount(st.home, 0); err != nil {
			return fmt.Errorf("cleanup btrfs driver: unmount %s: %w", st.home, err)
		}
	}
	return nil
}

// Exists reports whether layer id has a subvolume.
func (d *Driver) Exists(ctx context.Context, id string) (bool, error) {
	st, err := d.state()
	if err != nil {
		return false, fmt.Errorf("exists layer %s: %w", id, err)
	}
	_, err = st.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ListLayers returns the names of the subvolumes under Home/subvolumes.
func (d *Driver) ListLayers(ctx context.Context) ([]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	ids, err := driverkit.ListDirs(st.subvolumesDir())
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	return ids, nil
}

// Status reports the home and whether quota accounting is in use.
func (d *Driver) Status(ctx context.Context) ([][2]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	quota := "disabled"
	if st.opts.minSpace > 0 {
		quota = "enabled"
	} else if _, err := os.Stat(st.quotasDir()); err == nil {
		quota = "enabled"
	}
	return [][2]string{{"Home", st.home}, {"Quota", quota}}, nil
}

// Metadata returns the layer's subvolume path and, for a layer with a size quota, its size.
func (d *Driver) Metadata(ctx context.Context, id string) (map[string]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
	}
	p, err := st.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
	}
	md := map[string]string{"Path": p}
	if size, ok, err := st.readQuota(id); err != nil {
		return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
	} else if ok {
		md["Size"] = fmt.Sprint(size)
	}
	return md, nil
}
