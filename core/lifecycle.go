package core

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/moby/sys/mountinfo"

	"github.com/pluggable-storage/storage/errdefs"
)

// Version is the version of this store implementation, reported by Store.Version.
const Version = "1.0.0"

// Shutdown ends the use of the driver (SPEC-disk §3.5). If any layer has a mount count above
// zero it fails with ErrLayerMounted; with force it first unmounts those layers (returned in
// unmounted) but still fails and skips the driver's Cleanup. With nothing mounted it runs the
// driver's Cleanup (undoing Init's host changes, such as overlay's bind mount of its home) and
// records a write on storage.lock, so every other user initialises the driver again before its
// next use. The graph lock is held exclusively throughout.
func (s *Store) Shutdown(ctx context.Context, force bool) (unmounted []string, err error) {
	ctx, done := s.opContext(ctx)
	defer done()
	if s.readOnly {
		return nil, nil
	}
	end, err := s.beginMode(true, true, kAll)
	if err != nil {
		return nil, fmt.Errorf("shutdown: %w", err)
	}
	defer end()
	var mounted []string
	for id, e := range s.mounts.byID {
		if e.Count > 0 {
			mounted = append(mounted, id)
		}
	}
	sort.Strings(mounted)
	if len(mounted) > 0 {
		var errs []error
		if force {
			for _, id := range mounted {
				if _, err := s.unmountLayer(ctx, id, true); err != nil {
					errs = append(errs, err)
					continue
				}
				unmounted = append(unmounted, id)
			}
		}
		errs = append([]error{fmt.Errorf("shutdown: %w: %w", ErrLayerMounted, ErrLayerUsedByContainer)}, errs...)
		return unmounted, errors.Join(errs...)
	}
	home := filepath.Join(s.graphRoot, s.driverName)
	homeMounted, _ := mountinfo.Mounted(home)
	if s.DriverStarted() || homeMounted {
		d, err := s.driver(ctx)
		if err != nil {
			return nil, fmt.Errorf("shutdown: %w", err)
		}
		if err := d.Cleanup(ctx); err != nil {
			return nil, fmt.Errorf("shutdown: %w", s.driverErr(err))
		}
		s.driverInited = false
	}
	if err := s.graphLock.RecordWrite(); err != nil {
		return nil, fmt.Errorf("shutdown: record write on storage.lock: %w", withClass(err, errdefs.ErrUnavailable))
	}
	return nil, nil
}

// Wipe deletes every container, image and layer (newest layers first), then whatever layers
// the driver still holds. Mounted layers are unmounted as they are deleted.
func (s *Store) Wipe(ctx context.Context) error {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	defer end()
	for len(s.containers.t.items) > 0 {
		c := s.containers.t.items[len(s.containers.t.items)-1]
		if err := s.deleteContainer(ctx, c, true); err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
	}
	for len(s.images.t.items) > 0 {
		if err := s.removeImage(s.images.t.items[len(s.images.t.items)-1]); err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
	}
	for len(s.layers.t.items) > 0 {
		if err := s.deleteLayer(ctx, s.layers.t.items[len(s.layers.t.items)-1]); err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
	}
	d, err := s.driver(ctx)
	if err != nil {
		return fmt.Errorf("wipe: %w", err)
	}
	left, err := d.ListLayers(ctx)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotSupported) {
			return nil
		}
		return fmt.Errorf("wipe: %w", s.driverErr(err))
	}
	for _, id := range left {
		if err := d.Remove(ctx, id); err != nil {
			return fmt.Errorf("wipe: driver layer %s: %w", id, s.driverErr(err))
		}
	}
	return nil
}

// Status returns Root, Run Root, Driver Name and Driver Options, then the driver's own pairs.
func (s *Store) Status(ctx context.Context) ([][2]string, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(false)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	defer end()
	out := [][2]string{
		{"Root", s.graphRoot},
		{"Run Root", s.runRoot},
		{"Driver Name", s.driverName},
		{"Driver Options", fmt.Sprintf("%v", s.opts.DriverOptions)},
	}
	d, err := s.driver(ctx)
	if err != nil {
		return out, fmt.Errorf("status: %w", err)
	}
	pairs, err := d.Status(ctx)
	if err != nil {
		return out, fmt.Errorf("status: %w", s.driverErr(err))
	}
	return append(out, pairs...), nil
}

// Version returns [["Version", Version]]. It does not start the driver.
func (s *Store) Version() ([][2]string, error) {
	return [][2]string{{"Version", Version}}, nil
}
