package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// defaultDriverPriority is the auto-pick order of SPEC-disk §1.8 (aufs does not exist here; vfs
// is never picked unless listed).
var defaultDriverPriority = []string{"overlay", "btrfs", "zfs"}

// knownDrivers are the driver names whose home directory in the graph root marks a store that
// already uses them.
var knownDrivers = []string{"overlay", "vfs", "btrfs", "zfs"}

// DefaultPluginDirs are searched for driver plugins after Options.PluginDirs (and before the
// directory of the running executable, which pluginapi adds).
var DefaultPluginDirs = []string{"/usr/local/libexec/containers-storage", "/usr/libexec/containers-storage"}

func (s *Store) newClient(name string) (*pluginapi.Client, error) {
	c, err := pluginapi.NewClient(pluginapi.ClientConfig{
		Driver:     name,
		Path:       s.opts.PluginPath,
		PluginDirs: append(cloneStrings(s.opts.PluginDirs), DefaultPluginDirs...),
		Logger:     s.log.Named(name),
	})
	if err != nil {
		return nil, fmt.Errorf("find driver %s: %w", name, withClass(err, errdefs.ErrNotSupported))
	}
	return c, nil
}

func (s *Store) initOptions() pluginapi.InitOptions {
	return pluginapi.InitOptions{
		Home:      filepath.Join(s.graphRoot, s.driverName),
		RunHome:   filepath.Join(s.runRoot, s.driverName),
		GraphRoot: s.graphRoot,
		RunRoot:   s.runRoot,
		Options:   s.driverOptions(),
	}
}

// driverOptions are the configured driver options, plus the split store's root as an image
// store the driver searches for layers (where the established tool keeps read-only layers).
func (s *Store) driverOptions() []string {
	opts := cloneStrings(s.opts.DriverOptions)
	if s.splitRoot != "" {
		opts = append(opts, s.driverName+".imagestore="+s.splitRoot)
	}
	return opts
}

// pickDriver chooses a driver when none is configured: a driver whose home already exists in
// the graph root wins (no plugin started); otherwise the first of the priority list whose
// plugin initialises. The winner stays initialised.
func (s *Store) pickDriver(ctx context.Context) error {
	priority := s.opts.DriverPriority
	candidates := knownDrivers
	if len(priority) > 0 {
		candidates = priority
	}
	for _, name := range candidates {
		if name == "overlay2" {
			name = "overlay"
		}
		if fi, err := os.Stat(filepath.Join(s.graphRoot, name)); err == nil && fi.IsDir() {
			if _, err := os.Stat(filepath.Join(s.graphRoot, name+"-layers")); err == nil {
				s.driverName = name
				s.client, s.clientErr = s.newClient(name)
				return nil
			}
		}
	}
	if len(priority) == 0 {
		priority = defaultDriverPriority
	}
	var errs []error
	for _, name := range priority {
		if name == "overlay2" {
			name = "overlay"
		}
		c, err := s.newClient(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.driverName = name
		if _, err := c.Init(ctx, s.initOptions()); err != nil {
			errs = append(errs, fmt.Errorf("driver %s: %w", name, err))
			_ = c.Close()
			continue
		}
		s.client = c
		s.driverInited = true
		s.log.Debug("picked driver", "driver", name)
		return nil
	}
	s.driverName = ""
	return fmt.Errorf("open store %s: %w: %w", s.graphRoot, ErrNoDriver, errors.Join(errs...))
}

// driver returns the initialised driver, starting the plugin and calling Init on first use (and
// again after another user's Shutdown changed the graph lock token). s.mu held.
func (s *Store) driver(ctx context.Context) (pluginapi.Driver, error) {
	if s.client == nil {
		if s.clientErr != nil {
			return nil, s.clientErr
		}
		return nil, fmt.Errorf("driver %s: %w", s.driverName, errdefs.ErrUnavailable)
	}
	if !s.driverInited {
		if _, err := s.client.Init(ctx, s.initOptions()); err != nil {
			return nil, fmt.Errorf("initialize driver %s: %w", s.driverName, err)
		}
		s.driverInited = true
	}
	return s.client, nil
}

// driverErr names the driver in an error coming from it.
func (s *Store) driverErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("driver %s: %w", s.driverName, withClass(err, errdefs.ErrUnavailable))
}
