package vfsdriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// Name is the driver's stable name; the store keeps vfs layers under <graphroot>/vfs.
const Name = "vfs"

// Version is this driver's own version, reported in Info.
const Version = "1.0.0"

var (
	errNotInitialized = errdefs.Sentinel(errdefs.ErrUnavailable, "vfs driver not initialized")
	// errLayerUnknown is the established tool's text for a missing layer.
	errLayerUnknown = errdefs.Sentinel(errdefs.ErrNotFound, "layer not known")
)

// Driver is the vfs driver. The zero value is not usable; call New, then Init.
type Driver struct {
	// st is set once by Init and never changed, so calls read it without a lock.
	st atomic.Pointer[state]
	// differ forwards to the state's differ (diff.go).
	differ
}

// state is what Init establishes.
type state struct {
	home    string // <graphroot>/vfs
	opts    options
	differ  pluginapi.Differ
	backing string // backing file system name, for Status
}

// New returns an uninitialized vfs driver.
func New() *Driver {
	d := &Driver{}
	d.differ = driverkit.ForwardDiffer(d.state, func(st *state) pluginapi.Differ { return st.differ })
	return d
}

var _ pluginapi.Driver = (*Driver)(nil)

func (d *Driver) info() pluginapi.Info { return driverkit.Info(Name, Version) }

// Info identifies the driver. vfs advertises no capabilities.
func (d *Driver) Info(ctx context.Context) (pluginapi.Info, error) { return d.info(), nil }

// Init validates the options, creates Home/dir and Home/staging (0700) and deletes holder
// directories left by a crashed process. A second Init (a restarted plugin) must carry the same
// options; it redoes the same work.
func (d *Driver) Init(ctx context.Context, opts pluginapi.InitOptions) (pluginapi.Info, error) {
	if opts.Home == "" {
		return pluginapi.Info{}, fmt.Errorf("init vfs driver: empty home: %w", errdefs.ErrInvalidArgument)
	}
	o, err := parseOptions(opts.Options)
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init vfs driver: %w", err)
	}
	st := &state{home: opts.Home, opts: o}
	for _, p := range []string{st.home, st.layersDir(), st.stagingDir()} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return pluginapi.Info{}, fmt.Errorf("init vfs driver: %w", err)
		}
	}
	if st.backing, err = driverkit.BackingFS(st.home); err != nil {
		st.backing = "unknown"
	}
	st.differ = newDiffer(st)
	if err := st.sweepStaging(); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init vfs driver: %w", err)
	}
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

func (st *state) layersDir() string  { return filepath.Join(st.home, "dir") }
func (st *state) stagingDir() string { return filepath.Join(st.home, "staging") }

// layerPath is where layer id lives (or would live) in this driver's own home.
func (st *state) layerPath(id string) string { return filepath.Join(st.layersDir(), id) }

// lookup returns the directory of an existing layer: the one under Home, else the first under an
// image store (<imagestore>/vfs/dir/<id>). A missing layer is ErrNotFound naming id.
func (st *state) lookup(id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	candidates := []string{st.layerPath(id)}
	for _, s := range st.opts.imageStores {
		candidates = append(candidates, filepath.Join(s, Name, "dir", id))
	}
	for _, c := range candidates {
		fi, err := os.Stat(c)
		if err == nil && fi.IsDir() {
			return c, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("layer %s: %w", id, err)
		}
	}
	return "", fmt.Errorf("layer %s: %w", id, errLayerUnknown)
}

// validID refuses IDs that are not a single path component: the store does not validate
// caller-supplied IDs, and vfs uses them as directory names.
func validID(id string) error {
	if !driverkit.IsDirName(id) {
		return fmt.Errorf("layer ID %q: not usable as a directory name: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Get returns the layer's directory; vfs mounts nothing, so Get is idempotent and needs no Put.
// Like the established driver it accepts no mount options except "ro" (which it ignores:
// vfs does not advertise CapReadOnlyMount).
func (d *Driver) Get(ctx context.Context, id string, opts pluginapi.MountOpts) (string, error) {
	st, err := d.state()
	if err != nil {
		return "", fmt.Errorf("get layer %s: %w", id, err)
	}
	for _, o := range opts.Options {
		if o != "ro" {
			return "", fmt.Errorf("get layer %s: vfs driver does not support mount option %q: %w", id, o, errdefs.ErrNotSupported)
		}
	}
	dir, err := st.lookup(id)
	if err != nil {
		return "", fmt.Errorf("get %w", err)
	}
	return dir, nil
}

// Put does nothing: the layer directory is its own mount point.
func (d *Driver) Put(ctx context.Context, id string) error {
	if _, err := d.state(); err != nil {
		return fmt.Errorf("put layer %s: %w", id, err)
	}
	return nil
}

// Exists reports whether layer id is under Home or an image store.
func (d *Driver) Exists(ctx context.Context, id string) (bool, error) {
	st, err := d.state()
	if err != nil {
		return false, fmt.Errorf("exists layer %s: %w", id, err)
	}
	if validID(id) != nil {
		return false, nil
	}
	_, err = st.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("exists %w", err)
	}
	return true, nil
}

// ListLayers returns the layers under Home/dir (not those of image stores, as the established
// driver does).
func (d *Driver) ListLayers(ctx context.Context) ([]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	ids, err := driverkit.ListDirs(st.layersDir())
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	return ids, nil
}

// Status reports the backing file system and the image stores, if any.
func (d *Driver) Status(ctx context.Context) ([][2]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	pairs := [][2]string{{"Backing Filesystem", st.backing}}
	if len(st.opts.imageStores) > 0 {
		pairs = append(pairs, [2]string{"Image Stores", strings.Join(st.opts.imageStores, ",")})
	}
	return pairs, nil
}

// Metadata returns {"Dir": the layer directory}.
func (d *Driver) Metadata(ctx context.Context, id string) (map[string]string, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
	}
	dir, err := st.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("metadata of %w", err)
	}
	return map[string]string{"Dir": dir}, nil
}

// Cleanup deletes holder directories of dead processes. vfs mounts nothing and changes nothing
// on the host at Init, so there is nothing else to undo.
func (d *Driver) Cleanup(ctx context.Context) error {
	st, err := d.state()
	if err != nil {
		return nil
	}
	if err := st.sweepStaging(); err != nil {
		return fmt.Errorf("cleanup vfs driver: %w", err)
	}
	return nil
}
