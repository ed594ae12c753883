package core

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/moby/sys/mountinfo"

	"github.com/pluggable-storage/storage/core/internal/lockfile"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// mountEntry is one element of mountpoints.json (SPEC-disk §1.5).
type mountEntry struct {
	ID    string `json:"id"`
	Path  string `json:"path"`
	Count int    `json:"count"`
}

// mountStore holds the mount counts of <runroot>/D-layers/mountpoints.json. The counts are the
// store's, not the driver's: they survive this process and restarts of the plugin, and live
// in the run root so that a reboot forgets them with the mounts themselves. Only layers with a
// count above zero are listed. Same locking and crash contract as kindStore.
type mountStore struct {
	lock   *lockfile.LockFile
	path   string
	byID   map[string]*mountEntry
	loaded bool
}

func newMountStore(lock *lockfile.LockFile, path string) *mountStore {
	return &mountStore{lock: lock, path: path, byID: map[string]*mountEntry{}}
}

func (m *mountStore) refresh() error {
	modified, err := m.lock.Modified()
	if err != nil {
		return fmt.Errorf("check %s for changes: %w", m.path, withClass(err, errdefs.ErrUnavailable))
	}
	if m.loaded && !modified {
		return nil
	}
	entries, err := readJSONFile[mountEntry](m.path)
	if err != nil {
		m.loaded = false
		return err
	}
	m.byID = make(map[string]*mountEntry, len(entries))
	for _, e := range entries {
		if e.Count > 0 {
			m.byID[e.ID] = e
		}
	}
	m.loaded = true
	return nil
}

func (m *mountStore) save() error {
	list := make([]*mountEntry, 0, len(m.byID))
	for _, e := range m.byID {
		if e.Count > 0 {
			list = append(list, e)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	if err := writeJSONFile(m.path, list, false); err != nil {
		return err
	}
	if err := m.lock.RecordWrite(); err != nil {
		return fmt.Errorf("record write on the lock of %s: %w", m.path, withClass(err, errdefs.ErrUnavailable))
	}
	return nil
}

func (m *mountStore) count(id string) (int, string) {
	if e, ok := m.byID[id]; ok {
		return e.Count, e.Path
	}
	return 0, ""
}

// MountOptions are the options of Mount and MountImage.
type MountOptions struct {
	MountLabel string
	Options    []string
}

// mountLayer mounts layer l (or counts one more user of its mount) and saves the count. A
// layer whose count is above zero is counted again only if its recorded path is still mounted
// (or is the layer's own directory, as with vfs); otherwise the driver mounts it again. Write
// lock held.
func (s *Store) mountLayer(ctx context.Context, l *Layer, opts MountOptions, readOnly bool) (string, error) {
	count, path := s.mounts.count(l.ID)
	if count > 0 && stillMounted(path) {
		s.mounts.byID[l.ID].Count++
		if err := s.mounts.save(); err != nil {
			s.mounts.byID[l.ID].Count--
			return "", err
		}
		return path, nil
	}
	d, err := s.driver(ctx)
	if err != nil {
		return "", err
	}
	label := opts.MountLabel
	if label == "" {
		label = l.MountLabel
	}
	p, err := d.Get(ctx, l.ID, pluginapi.MountOpts{MountLabel: label, Options: opts.Options, ReadOnly: readOnly})
	if err != nil {
		return "", s.driverErr(err)
	}
	p = filepath.Clean(p)
	s.mounts.byID[l.ID] = &mountEntry{ID: l.ID, Path: p, Count: count + 1}
	if err := s.mounts.save(); err != nil {
		if count == 0 {
			delete(s.mounts.byID, l.ID)
			_ = d.Put(ctx, l.ID)
		}
		return "", err
	}
	return p, nil
}

// stillMounted reports whether path is a mount point, or (drivers such as vfs that "mount" by
// handing out the layer directory) an existing directory that is not a mount point of anything
// else. A path that no longer exists is not mounted.
func stillMounted(path string) bool {
	if path == "" {
		return false
	}
	mounted, err := mountinfo.Mounted(path)
	if err != nil {
		return false
	}
	return mounted
}

// unmountLayer drops one reference (all of them with force); the last one calls the driver's
// Put. Write lock held.
func (s *Store) unmountLayer(ctx context.Context, id string, force bool) (stillMounted bool, err error) {
	e, ok := s.mounts.byID[id]
	if !ok || e.Count <= 0 {
		return false, fmt.Errorf("unmount layer %s: %w", id, ErrLayerNotMounted)
	}
	if force || e.Count == 1 {
		d, err := s.driver(ctx)
		if err != nil {
			return true, fmt.Errorf("unmount layer %s: %w", id, err)
		}
		if err := d.Put(ctx, id); err != nil {
			return true, fmt.Errorf("unmount layer %s: %w", id, s.driverErr(err))
		}
		delete(s.mounts.byID, id)
	} else {
		e.Count--
	}
	if err := s.mounts.save(); err != nil {
		return true, fmt.Errorf("unmount layer %s: %w", id, err)
	}
	_, still := s.mounts.byID[id]
	return still, nil
}

// Mount mounts a layer, or a container's layer, read-write and returns the path of its
// contents. Each call counts one more user; Unmount drops one.
func (s *Store) Mount(ctx context.Context, ref string, opts MountOptions) (string, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return "", fmt.Errorf("mount %s: %w", ref, err)
	}
	defer end()
	l, err := s.layerOrContainerLayer(ref)
	if err != nil {
		return "", fmt.Errorf("mount %s: %w", ref, err)
	}
	if l.ReadOnly {
		return "", fmt.Errorf("mount %s: mounting read/only store images is not allowed: %w", ref, ErrStoreIsReadOnly)
	}
	if opts.MountLabel == "" {
		if c, ok := s.containers.t.get(ref); ok {
			if lbl, ok := c.Flags["MountLabel"].(string); ok {
				opts.MountLabel = lbl
			}
		}
	}
	p, err := s.mountLayer(ctx, l, opts, false)
	if err != nil {
		return "", fmt.Errorf("mount layer %s: %w", l.ID, err)
	}
	return p, nil
}

// Unmount drops one reference to the mount of a layer or a container's layer (every reference
// with force); the last one unmounts. stillMounted reports whether references remain.
func (s *Store) Unmount(ctx context.Context, ref string, force bool) (stillMounted bool, err error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return false, fmt.Errorf("unmount %s: %w", ref, err)
	}
	defer end()
	l, err := s.layerOrContainerLayer(ref)
	if err != nil {
		return false, fmt.Errorf("unmount %s: %w", ref, err)
	}
	return s.unmountLayer(ctx, l.ID, force)
}

// Mounted returns the mount count of a layer or a container's layer. It does not start the
// driver.
func (s *Store) Mounted(ref string) (int, error) {
	end, err := s.beginRead(kLayers | kContainers | kMounts)
	if err != nil {
		return 0, fmt.Errorf("mounted %s: %w", ref, err)
	}
	defer end()
	l, err := s.layerOrContainerLayer(ref)
	if err != nil {
		return 0, fmt.Errorf("mounted %s: %w", ref, err)
	}
	n, _ := s.mounts.count(l.ID)
	return n, nil
}

// MountImage mounts an image's top layer read-only.
func (s *Store) MountImage(ctx context.Context, ref string, opts MountOptions) (string, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return "", fmt.Errorf("mount image %s: %w", ref, err)
	}
	defer end()
	img, ok := s.getImage(ref)
	if !ok {
		return "", fmt.Errorf("mount image %q: %w", ref, ErrImageUnknown)
	}
	l, ok := s.layerByID(img.TopLayer)
	if !ok {
		return "", fmt.Errorf("mount image %s: top layer %q: %w", img.ID, img.TopLayer, ErrLayerUnknown)
	}
	p, err := s.mountLayer(ctx, l, opts, true)
	if err != nil {
		return "", fmt.Errorf("mount image %s: layer %s: %w", img.ID, l.ID, err)
	}
	return p, nil
}

// UnmountImage drops one reference to the mount of an image's top layer.
func (s *Store) UnmountImage(ctx context.Context, ref string, force bool) (bool, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return false, fmt.Errorf("unmount image %s: %w", ref, err)
	}
	defer end()
	img, ok := s.getImage(ref)
	if !ok {
		return false, fmt.Errorf("unmount image %q: %w", ref, ErrImageUnknown)
	}
	still, err := s.unmountLayer(ctx, img.TopLayer, force)
	if err != nil {
		return still, fmt.Errorf("unmount image %s: %w", img.ID, err)
	}
	return still, nil
}

// layerOrContainerLayer resolves ref as a layer, else as a container (giving its layer).
func (s *Store) layerOrContainerLayer(ref string) (*Layer, error) {
	if l, ok := s.getLayer(ref); ok {
		return l, nil
	}
	if c, ok := s.containers.t.get(ref); ok {
		if l, ok := s.layers.t.byID[c.LayerID]; ok {
			return l, nil
		}
		return nil, fmt.Errorf("container %s: layer %q: %w", c.ID, c.LayerID, ErrLayerUnknown)
	}
	return nil, fmt.Errorf("layer %q: %w", ref, ErrLayerUnknown)
}
