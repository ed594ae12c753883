// Package testdriver is a small directory-backed Driver used only to test pluginapi's plumbing
// (in-process and as the plugin executable built from ./plugin). Layers are plain directories of
// regular files under Home/layers; Get returns the directory and mounts nothing.
//
// Layer IDs with these prefixes misbehave on purpose, in the call named:
//
//	Create "panic..."     panics
//	Create "sleep..."     blocks until its context is done (counted in Status "Cancelled") or 1 min;
//	                      Status "Sleeping" counts the calls blocked now
//	Create "err-N"        fails with errdefs.Classes[N]; "err-none" fails with no class
//	Create "exit-..."     exits the process with status 7 (plugin only)
//	Diff   "exitdiff..."  exits the process with status 9 after streaming 2 MiB (plugin only)
//	Diff   "faildiff..."  fails after streaming 2 MiB
//
// ApplyDiff records the text of its last error in Status "LastApplyError".
//
// The plugin executable reads TESTDRIVER_NAME (Info name, default "test") and
// TESTDRIVER_API_VERSIONS (comma-separated, default "1").
package testdriver

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// MidDiffBytes is how far "exitdiff" and "faildiff" layers stream before failing.
const MidDiffBytes = 2 << 20

// Driver is the test driver. The zero value is not usable; use New.
type Driver struct {
	name        string
	apiVersions []int
	// InProcess turns the process-exiting behaviours into errors, for the in-process harness.
	InProcess bool

	mu        sync.Mutex
	home      string
	lastApply string
	sleeping  atomic.Int64
	cancelled atomic.Int64
}

// New returns a driver named name speaking apiVersions.
func New(name string, apiVersions []int) *Driver {
	return &Driver{name: name, apiVersions: apiVersions}
}

// FromEnv returns the driver the plugin executable serves.
func FromEnv() *Driver {
	name := os.Getenv("TESTDRIVER_NAME")
	if name == "" {
		name = "test"
	}
	versions := []int{pluginapi.APIVersion}
	if v := os.Getenv("TESTDRIVER_API_VERSIONS"); v != "" {
		versions = nil
		for _, s := range strings.Split(v, ",") {
			n, _ := strconv.Atoi(s)
			versions = append(versions, n)
		}
	}
	return New(name, versions)
}

var _ pluginapi.Driver = (*Driver)(nil)

func (d *Driver) Info(ctx context.Context) (pluginapi.Info, error) {
	return pluginapi.Info{Name: d.name, Version: "0.0.1-test", APIVersions: d.apiVersions}, nil
}

func (d *Driver) Init(ctx context.Context, opts pluginapi.InitOptions) (pluginapi.Info, error) {
	if opts.Home == "" {
		return pluginapi.Info{}, fmt.Errorf("init: empty home: %w", errdefs.ErrInvalidArgument)
	}
	for _, o := range opts.Options {
		return pluginapi.Info{}, fmt.Errorf("init: unknown option %q: %w", o, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(filepath.Join(opts.Home, "layers"), 0o700); err != nil {
		return pluginapi.Info{}, fmt.Errorf("init: %w", err)
	}
	d.mu.Lock()
	d.home = opts.Home
	d.mu.Unlock()
	hclog.Default().Info("testdriver init", "home", opts.Home, "pid", os.Getpid())
	if !d.InProcess {
		// Must not reach the host's stdout.
		fmt.Println("testdriver stdout noise")
	}
	info, _ := d.Info(ctx)
	info.Capabilities = []string{pluginapi.CapNativeDiff}
	return info, nil
}

func (d *Driver) dir(id string) (string, error) {
	d.mu.Lock()
	home := d.home
	d.mu.Unlock()
	if home == "" {
		return "", fmt.Errorf("layer %s: driver not initialised: %w", id, errdefs.ErrInvalidArgument)
	}
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("layer %q: bad ID: %w", id, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(home, "layers", id), nil
}

func (d *Driver) existing(id string) (string, error) {
	dir, err := d.dir(id)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("layer %s: %w", id, errdefs.ErrNotFound)
	}
	return dir, nil
}

func (d *Driver) Create(ctx context.Context, id, parent string, opts pluginapi.CreateOpts) error {
	switch {
	case strings.HasPrefix(id, "panic"):
		panic("testdriver: asked to panic creating " + id)
	case strings.HasPrefix(id, "sleep"):
		d.sleeping.Add(1)
		defer d.sleeping.Add(-1)
		select {
		case <-ctx.Done():
			d.cancelled.Add(1)
			return fmt.Errorf("create layer %s: %w", id, ctx.Err())
		case <-time.After(time.Minute):
			return fmt.Errorf("create layer %s: slept a minute: %w", id, errdefs.ErrUnavailable)
		}
	case strings.HasPrefix(id, "err-"):
		if n, err := strconv.Atoi(strings.TrimPrefix(id, "err-")); err == nil && n >= 0 && n < len(errdefs.Classes) {
			return fmt.Errorf("create layer %s: asked to fail: %w", id, errdefs.Classes[n])
		}
		return fmt.Errorf("create layer %s: asked to fail with no class", id)
	case strings.HasPrefix(id, "exit-") && !d.InProcess:
		os.Exit(7)
	}
	dir, err := d.dir(id)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("create layer %s: %w", id, errdefs.ErrAlreadyExists)
	}
	var pdir string
	if parent != "" {
		if pdir, err = d.existing(parent); err != nil {
			return fmt.Errorf("create layer %s: parent: %w", id, err)
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if pdir != "" {
		if err := os.CopyFS(dir, os.DirFS(pdir)); err != nil {
			os.RemoveAll(dir)
			return fmt.Errorf("create layer %s: copy parent: %w", id, err)
		}
	}
	return nil
}

func (d *Driver) Remove(ctx context.Context, id string) error {
	dir, err := d.dir(id)
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func (d *Driver) Get(ctx context.Context, id string, opts pluginapi.MountOpts) (string, error) {
	return d.existing(id)
}

func (d *Driver) Put(ctx context.Context, id string) error {
	_, err := d.existing(id)
	return err
}

func (d *Driver) Exists(ctx context.Context, id string) (bool, error) {
	dir, err := d.dir(id)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(dir)
	return err == nil, nil
}

func (d *Driver) ListLayers(ctx context.Context) ([]string, error) {
	dir, err := d.dir("x")
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids, nil
}

func (d *Driver) Status(ctx context.Context) ([][2]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return [][2]string{
		{"Home", d.home},
		{"Pid", strconv.Itoa(os.Getpid())},
		{"Sleeping", strconv.FormatInt(d.sleeping.Load(), 10)},
		{"Cancelled", strconv.FormatInt(d.cancelled.Load(), 10)},
		{"LastApplyError", d.lastApply},
	}, nil
}

func (d *Driver) Metadata(ctx context.Context, id string) (map[string]string, error) {
	dir, err := d.existing(id)
	if err != nil {
		return nil, err
	}
	return map[string]string{"Dir": dir}, nil
}

func (d *Driver) Cleanup(ctx context.Context) error { return nil }

// files lists the regular files of layer dir, sorted.
func files(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// Diff streams a tar of every regular file of the layer (parent is ignored).
func (d *Driver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	dir, err := d.existing(id)
	if err != nil {
		return nil, fmt.Errorf("diff of layer %s: %w", id, err)
	}
	names, err := files(dir)
	if err != nil {
		return nil, fmt.Errorf("diff of layer %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	go func() {
		var w io.Writer = pw
		if strings.HasPrefix(id, "exitdiff") || strings.HasPrefix(id, "faildiff") {
			w = &failAfter{w: pw, left: MidDiffBytes, exit: strings.HasPrefix(id, "exitdiff") && !d.InProcess}
		}
		pw.CloseWithError(writeTar(ctx, w, dir, names))
	}()
	return pr, nil
}

func writeTar(ctx context.Context, w io.Writer, dir string, names []string) error {
	tw := tar.NewWriter(w)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// failAfter passes left bytes, then exits the process or fails.
type failAfter struct {
	w    io.Writer
	left int
	exit bool
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n, _ := f.w.Write(p[:f.left])
		f.left -= n
		if f.exit {
			// Give the framing writer no chance to finish: the pipe holds what was flushed.
			os.Exit(9)
		}
		return n, errors.New("testdriver: asked to fail mid-diff")
	}
	n, err := f.w.Write(p)
	f.left -= n
	return n, err
}

func (d *Driver) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	n, err := d.applyDiff(ctx, id, diff)
	d.mu.Lock()
	d.lastApply = ""
	if err != nil {
		d.lastApply = err.Error()
	}
	d.mu.Unlock()
	return n, err
}

func (d *Driver) applyDiff(ctx context.Context, id string, diff io.Reader) (int64, error) {
	dir, err := d.existing(id)
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	tr := tar.NewReader(diff)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("apply diff to layer %s: %w", id, err)
		}
		h, err := tr.Next()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("apply diff to layer %s: %w", id, err)
		}
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(h.Name) {
			return total, fmt.Errorf("apply diff to layer %s: entry %q: %w", id, h.Name, errdefs.ErrInvalidArgument)
		}
		p := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return total, fmt.Errorf("apply diff to layer %s: %w", id, err)
		}
		f, err := os.Create(p)
		if err != nil {
			return total, fmt.Errorf("apply diff to layer %s: %w", id, err)
		}
		n, err := io.Copy(f, tr)
		total += n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return total, fmt.Errorf("apply diff to layer %s: %s: %w", id, h.Name, err)
		}
	}
}

func (d *Driver) Changes(ctx context.Context, id, parent string) ([]archive.Change, error) {
	dir, err := d.existing(id)
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", id, err)
	}
	names, err := files(dir)
	if err != nil {
		return nil, err
	}
	var out []archive.Change
	for _, n := range names {
		out = append(out, archive.Change{Path: "/" + n, Kind: archive.ChangeAdd})
	}
	return out, nil
}

func (d *Driver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	dir, err := d.existing(id)
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", id, err)
	}
	names, err := files(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return 0, err
		}
		total += fi.Size()
	}
	return total, nil
}
