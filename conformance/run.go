package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pluggable-storage/storage/pluginapi"
)

// Config describes the driver under test and which optional cases apply to it.
type Config struct {
	// Driver is the driver's name ("vfs", "overlay"): its home is <graphroot>/<Driver>, and a dead
	// plugin's errors must name it. Required.
	Driver string
	// Executable, if set, is the plugin executable (see BuildDriver). Each case starts it through
	// pluginapi.NewClient, and the protocol cases that kill the plugin run.
	Executable string
	// New, used when Executable is empty, returns a fresh, uninitialized driver. Each case serves
	// it behind real gRPC in this process (pluginapi.NewInProcess).
	New func() pluginapi.Driver
	// Options are the driver options every case passes to Init ("vfs.ignore_chown_errors=true").
	Options []string
	// GraphRoot returns a fresh, empty directory to use as one case's graph root, and registers
	// its removal with t.Cleanup. The default is t.TempDir(). btrfs and zfs point it at a file
	// system of their kind.
	GraphRoot func(t testing.TB) string
	// DeepLayerRead is how many layers DeepLayerRead stacks over its base (overlay: 128).
	// 0 means 10.
	DeepLayerRead int
	// DiffApplyFiles is how many files DiffApply writes into each layer. 0 means 100.
	DiffApplyFiles int
	// Quota says the driver enforces CreateOpts.StorageOpt["size"]; SetQuota runs only then.
	Quota bool
}

// testCase is one conformance case; run gets a harness whose driver is initialized unless
// noInit is set.
type testCase struct {
	name string
	run  func(t *testing.T, h *harness)
	// noInit: the case calls Init itself (option validation).
	noInit bool
	// needs returns a reason to skip the case under cfg, or "".
	needs func(cfg Config) string
}

// Cases returns the names of the cases Run runs (or skips), in order.
func Cases() []string {
	var names []string
	for _, c := range allCases() {
		names = append(names, c.name)
	}
	return names
}

func allCases() []testCase {
	return slices.Concat(graphCases(), contractCases(), protocolCases())
}

// Run runs every conformance case against the driver cfg describes, each as a subtest of t.
func Run(t *testing.T, cfg Config) {
	if cfg.Driver == "" {
		t.Fatal("conformance: Config.Driver is required")
	}
	if cfg.Executable == "" && cfg.New == nil {
		t.Fatal("conformance: Config needs Executable or New")
	}
	if os.Geteuid() != 0 {
		t.Skip("conformance: the suite needs root (chown, device nodes, mounts)")
	}
	for _, c := range allCases() {
		t.Run(c.name, func(t *testing.T) {
			if c.needs != nil {
				if why := c.needs(cfg); why != "" {
					t.Skip(why)
				}
			}
			h := newHarness(t, cfg)
			if !c.noInit {
				h.init(t)
			}
			c.run(t, h)
		})
	}
}

// harness is one case's driver and directories.
type harness struct {
	cfg           Config
	d             pluginapi.Driver
	proc          plugin // the plugin process, when Config.Executable is set
	root, runRoot string
	home, runHome string
	created       []string // layer IDs created through h.create, oldest first
	initialized   bool
}

// plugin is what the protocol cases need of a *pluginapi.Client: the process to kill.
type plugin interface {
	Started() bool
	Pid() int
}

// newHarness makes fresh roots and a fresh driver, and registers the teardown: remove every layer
// (newest first, then whatever ListLayers still reports), driver Cleanup, close the driver.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	root := ""
	if cfg.GraphRoot != nil {
		root = cfg.GraphRoot(t)
	} else {
		root = t.TempDir()
	}
	h := &harness{
		cfg:     cfg,
		root:    root,
		runRoot: t.TempDir(),
	}
	h.home = filepath.Join(h.root, cfg.Driver)
	h.runHome = filepath.Join(h.runRoot, cfg.Driver)
	d, closeFn, err := h.open(t)
	if err != nil {
		t.Fatalf("start driver %s: %v", cfg.Driver, err)
	}
	h.d = d
	t.Cleanup(func() {
		if err := h.teardown(closeFn); err != nil {
			t.Errorf("teardown of driver %s: %v", cfg.Driver, err)
		}
	})
	return h
}

func (h *harness) initOptions() pluginapi.InitOptions {
	return pluginapi.InitOptions{
		Home:      h.home,
		RunHome:   h.runHome,
		GraphRoot: h.root,
		RunRoot:   h.runRoot,
		Options:   slices.Clone(h.cfg.Options),
	}
}

func (h *harness) init(t *testing.T) {
	t.Helper()
	info, err := h.d.Init(t.Context(), h.initOptions())
	if err != nil {
		t.Fatalf("init driver %s: %v", h.cfg.Driver, err)
	}
	if info.Name != h.cfg.Driver {
		t.Fatalf("driver calls itself %q after Init, want %q", info.Name, h.cfg.Driver)
	}
	h.initialized = true
}

// teardown removes every layer, children before parents, then runs Cleanup and closes the
// driver. Errors are collected, the first never masked.
func (h *harness) teardown(closeFn func() error) error {
	ctx := context.Background()
	var errs []error
	if h.initialized {
		for i := len(h.created) - 1; i >= 0; i-- {
			if err := h.d.Remove(ctx, h.created[i]); err != nil {
				errs = append(errs, fmt.Errorf("remove layer %s: %w", h.created[i], err))
			}
		}
		if ids, err := h.d.ListLayers(ctx); err != nil {
			errs = append(errs, fmt.Errorf("list layers: %w", err))
		} else {
			for _, id := range ids {
				if err := h.d.Remove(ctx, id); err != nil {
					errs = append(errs, fmt.Errorf("remove layer %s: %w", id, err))
				}
			}
		}
		if err := h.d.Cleanup(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cleanup: %w", err))
		}
	}
	if closeFn != nil {
		if err := closeFn(); err != nil {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
	}
	return errors.Join(errs...)
}
