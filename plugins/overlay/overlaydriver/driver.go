package overlaydriver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// Name is the driver's stable name.
const Name = "overlay"

// Version is the driver's own version, reported by Info.
const Version = "1.0.0"

const (
	linkDir        = "l"
	tempDirs       = "tempdirs"
	stagingDir     = "staging"
	mountProgFile  = ".has-mount-program"
	stagingPrefix  = ".create-"
	probePrefix    = ".probe-"
	lowerFile      = "lower"
	linkFile       = "link"
	mergedDirName  = "merged"
	mergedTempName = "merged.1"
)

// ErrNotInitialized is returned by calls that need Init before it has been called.
var ErrNotInitialized = errdefs.Sentinel(errdefs.ErrUnavailable, "overlay driver not initialized")

// logger is where the driver logs: hclog's default, which pluginapi.Serve points at the host.
func logger() hclog.Logger { return hclog.Default().With("driver", Name) }

// Driver is the overlay graph driver. The zero value is not usable; use New.
type Driver struct {
	mu          sync.RWMutex // guards the fields set by Init; held for reading by every call
	initialized bool
	home        string
	runHome     string
	cfg         config
	feat        features
	naive       pluginapi.Differ

	layers  keyedMutex // serialises calls on the same layer
	linksMu sync.Mutex // serialises rebuilding the l/ directory
}

// New returns an overlay driver awaiting Init.
func New() *Driver {
	return &Driver{}
}

var _ pluginapi.Driver = (*Driver)(nil)

// Info identifies the driver; after Init it lists the capabilities found.
func (d *Driver) Info(ctx context.Context) (pluginapi.Info, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.info(), nil
}

func (d *Driver) info() pluginapi.Info {
	info := pluginapi.Info{Name: Name, Version: Version, APIVersions: []int{pluginapi.APIVersion}}
	if d.initialized {
		info.Capabilities = []string{pluginapi.CapReadOnlyMount}
		if d.feat.nativeDiff {
			info.Capabilities = append(info.Capabilities, pluginapi.CapNativeDiff)
		}
	}
	return info
}

// Init validates the options, prepares the home (layout directories, leftovers of interrupted
// creates and removes deleted, the private bind mount) and probes the kernel, reusing the probe
// results cached in the run home. Calling Init again with the same options is harmless: an
// existing bind mount is not stacked again.
func (d *Driver) Init(ctx context.Context, opts pluginapi.InitOptions) (pluginapi.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg, err := parseOptions(opts.Options)
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: %w", err)
	}
	if opts.Home == "" || !filepath.IsAbs(opts.Home) {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: home %q is not an absolute path: %w", opts.Home, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(opts.Home, 0o700); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: create home: %w", err)
	}
	// mountinfo shows resolved paths; every path the driver compares with it derives from home.
	home, err := filepath.EvalSymlinks(opts.Home)
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: resolve home: %w", err)
	}
	runHome := opts.RunHome
	if runHome != "" {
		if err := os.MkdirAll(runHome, 0o700); err != nil {
			return pluginapi.Info{}, fmt.Errorf("init overlay driver: create run home: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(home, linkDir), 0o755); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: %w", err)
	}
	if err := os.Chmod(filepath.Join(home, linkDir), 0o755); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(home, tempDirs), 0o700); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: %w", err)
	}
	removeLeftovers(home)
	feat, err := probeFeatures(home, runHome, cfg)
	if err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: %w", err)
	}
	if !cfg.skipMountHome && cfg.mountProgram == "" {
		if err := driverkit.MakePrivateBind(home); err != nil {
			return pluginapi.Info{}, fmt.Errorf("init overlay driver: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, mountProgFile), []byte(strconv.FormatBool(cfg.mountProgram != "")), 0o600); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init overlay driver: %w", err)
	}
	d.home, d.runHome, d.cfg, d.feat = home, runHome, cfg, feat
	d.naive = newNaive(d)
	d.initialized = true
	logger().Debug("initialized", "home", home, "backing_fs", feat.backingFS, "native_diff", feat.nativeDiff,
		"metacopy", feat.metacopy, "volatile", feat.volatile, "mount_program", cfg.mountProgram)
	return d.info(), nil
}

// removeLeftovers deletes what an interrupted Create (hidden staging dirs), Remove (tempdirs/)
// or probe left behind. Every such directory's name starts with the PID of the process that
// made it (scratchName); only those of dead processes are deleted, so an Init never pulls the
// staging directory from under a Create running in another process. Failures are left for the
// next Init.
func removeLeftovers(home string) {
	var dirs []string
	entries, _ := os.ReadDir(home)
	for _, e := range entries {
		for _, prefix := range []string{stagingPrefix, probePrefix} {
			if rest, ok := strings.CutPrefix(e.Name(), prefix); ok && ownerDead(rest) {
				dirs = append(dirs, filepath.Join(home, e.Name()))
			}
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(home, tempDirs))
	for _, e := range tmp {
		if ownerDead(e.Name()) {
			dirs = append(dirs, filepath.Join(home, tempDirs, e.Name()))
		}
	}
	for _, p := range dirs {
		logger().Info("removing leftover of an interrupted operation", "op", "init", "path", p)
		_ = unmountAll(filepath.Join(p, mergedDirName))
		_ = unmountAll(filepath.Join(p, "layer", mergedDirName))
		_ = os.RemoveAll(p)
	}
}

// scratchName is the name pattern of a temporary directory: the creating PID first, so that
// removeLeftovers can tell whether its creator is still running.
func scratchName(prefix, what string) string {
	return fmt.Sprintf("%s%d-%s-", prefix, os.Getpid(), what)
}

// ownerDead reports whether name ("<pid>-...") was made by a process that no longer exists.
func ownerDead(name string) bool {
	pidStr, _, ok := strings.Cut(name, "-")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 {
		return true
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}

// Status reports the driver's diagnostics.
func (d *Driver) Status(ctx context.Context) ([][2]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.initialized {
		return nil, fmt.Errorf("status: %w", ErrNotInitialized)
	}
	diffMethod := "native"
	if !d.feat.nativeDiff {
		diffMethod = "naive (" + d.feat.nativeWhy + ")"
	}
	st := [][2]string{
		{"Backing Filesystem", d.feat.backingFS},
		{"Supports d_type", strconv.FormatBool(d.feat.dType)},
		{"Native Overlay Diff", strconv.FormatBool(d.feat.nativeDiff)},
		{"Using metacopy", strconv.FormatBool(d.feat.metacopy)},
		{"Supports shifting", "false"},
		{"Supports volatile", strconv.FormatBool(d.feat.volatile)},
		{"Diff Method", diffMethod},
	}
	if d.cfg.mountProgram != "" {
		st = append(st, [2]string{"Mount Program", d.cfg.mountProgram})
	}
	return st, nil
}

// Cleanup unmounts every mount below the home (whoever made it) and undoes Init's private bind
// mount of the home. Errors are joined; Cleanup goes on after one.
func (d *Driver) Cleanup(ctx context.Context) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.initialized {
		return nil
	}
	var errs []error
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(d.home))
	if err != nil {
		return fmt.Errorf("cleanup overlay driver: %w", err)
	}
	// Deepest first, so nested mounts go before the mounts they sit on.
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].Mountpoint) > len(ms[j].Mountpoint) })
	for _, m := range ms {
		if m.Mountpoint == d.home {
			continue
		}
		if err := unmountAll(m.Mountpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if !d.cfg.skipMountHome && d.cfg.mountProgram == "" {
		// Only a bind mount of the home onto itself is undone (its root is a subdirectory of
		// its file system); a home that is the root of its own file system stays mounted.
		if m, err := mountAt(d.home); err != nil {
			errs = append(errs, err)
		} else if m != nil && m.Root != "/" {
			if err := unix.Unmount(d.home, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount home %s: %w", d.home, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleanup overlay driver: %w", err)
	}
	return nil
}

// keyedMutex is a set of mutexes created on demand, one per key.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns the unlock function.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
