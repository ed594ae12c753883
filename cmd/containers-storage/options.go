package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pluggable-storage/storage/core"
	"github.com/pluggable-storage/storage/errdefs"
)

// driverPathEnv names extra directories (colon-separated) searched for driver executables
// before the directory of this executable.
const driverPathEnv = "CONTAINERS_STORAGE_DRIVER_PATH"

// baseOptions is what the first parsing pass decided: the options to start from, and the
// configured roots used to fill in a root that no flag gave.
type baseOptions struct {
	opts                     core.Options
	defaultGraph, defaultRun string
}

// loadDefaults reads storage.conf ($CONTAINERS_STORAGE_CONF first; core applies $STORAGE_DRIVER
// and $STORAGE_OPTS). When none of graph root, run
// root, driver and driver options was given before the command, the configuration becomes the
// starting point and its values are copied into g, so that flags after the command override
// them one by one (and --storage-opt appends to the configured options), as in the established
// tool. Otherwise only the configured roots are kept, to fill in a missing root.
func loadDefaults(g *globalFlags, stderr io.Writer) (baseOptions, error) {
	cfg, err := core.DefaultOptions()
	if err != nil && errors.Is(err, errdefs.ErrNotFound) {
		// $CONTAINERS_STORAGE_CONF names a missing file: the established tool goes on
		// with the built-in defaults.
		if g.debug {
			fmt.Fprintf(stderr, "using the built-in storage defaults: %v\n", err)
		}
		cfg, err = core.LoadOptions("")
	}
	if g.nothingGiven() {
		if err != nil {
			return baseOptions{}, err
		}
		g.graph, g.run, g.driver = cfg.GraphRoot, cfg.RunRoot, cfg.Driver
		g.storageOpts = append([]string(nil), cfg.DriverOptions...)
		if g.imageStore == "" {
			g.imageStore = cfg.ImageStore
		}
		g.transient = g.transient || cfg.TransientStore
		return baseOptions{opts: cfg, defaultGraph: cfg.GraphRoot, defaultRun: cfg.RunRoot}, nil
	}
	if err != nil {
		// The flags describe the store; a broken configuration only matters for the
		// roots it would have supplied, so fall back to the built-in ones.
		if g.debug {
			fmt.Fprintf(stderr, "ignoring storage configuration: %v\n", err)
		}
		if cfg, err = core.LoadOptions(""); err != nil {
			return baseOptions{}, fmt.Errorf("built-in storage defaults: %w", err)
		}
	}
	base := core.Options{PluginPath: cfg.PluginPath, PluginDirs: cfg.PluginDirs}
	return baseOptions{opts: base, defaultGraph: cfg.GraphRoot, defaultRun: cfg.RunRoot}, nil
}

// effectiveOptions combines the starting point with the final flag values: a missing root
// comes from the configuration, relative roots are made absolute, and the driver search path
// starts with $CONTAINERS_STORAGE_DRIVER_PATH.
func effectiveOptions(base baseOptions, g *globalFlags) (core.Options, error) {
	o := base.opts
	o.GraphRoot, o.RunRoot, o.Driver = g.graph, g.run, g.driver
	o.DriverOptions = append([]string(nil), g.storageOpts...)
	o.ImageStore, o.TransientStore = g.imageStore, g.transient
	if o.GraphRoot == "" {
		if base.defaultGraph == "" {
			return o, fmt.Errorf("no storage root specified")
		}
		o.GraphRoot = base.defaultGraph
	}
	if o.RunRoot == "" {
		if base.defaultRun == "" {
			return o, fmt.Errorf("no storage runroot specified")
		}
		o.RunRoot = base.defaultRun
	}
	for _, p := range []*string{&o.GraphRoot, &o.RunRoot, &o.ImageStore} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, fmt.Errorf("making %q absolute: %w", *p, err)
		}
		*p = abs
	}
	o.PluginDirs = pluginDirs(o.PluginDirs)
	return o, nil
}

// pluginDirs returns the driver search path: $CONTAINERS_STORAGE_DRIVER_PATH, then the
// configured directories. The store adds its default locations after them, and the plugin
// client the directory holding this executable last (where the drivers are installed beside the
// CLI).
func pluginDirs(configured []string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, d := range append(filepath.SplitList(os.Getenv(driverPathEnv)), configured...) {
		if d != "" && !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}
