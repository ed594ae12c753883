package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// LayerOptions are the options of CreateLayer and CreateStorageLayer.
type LayerOptions struct {
	ID         string // "" = a random 64-hex ID
	Parent     string // ref of the parent layer; "" = a base layer
	Names      []string
	MountLabel string
	ReadOnly   bool // false = a read-write layer (as a container's)
	// UIDMap and GIDMap ask for an ID-mapped layer: not supported yet (ErrIDMapsNotSupported).
	UIDMap, GIDMap []IDMap
	// Volatile keeps the record in volatile-layers.json (written without fsync).
	Volatile bool
}

// newID returns a random 64-hex ID whose 12-character short form is not all digits.
func newID() string {
	b := make([]byte, 32)
	for {
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		id := hex.EncodeToString(b)
		if _, err := strconv.ParseInt(id[:12], 10, 64); err != nil {
			return id
		}
	}
}

// CreateLayer creates a layer, empty (diff == nil) or holding the tar stream diff, which may be
// compressed with any of the supported algorithms (detected). Exactly three driver calls are
// made for a layer from a tar: Init (first use only), Create and ApplyDiff.
//
// Crash contract: the record is saved (synced) with flags.incomplete before the driver is
// called, and the flag is cleared only after the contents, tar-split and digests are written. A
// failure removes the layer through the normal delete path (only the record, when the driver
// refused to create it or was not there to ask); a crash leaves an incomplete record
// that the next RW open removes, driver layer included. So no driver layer ever exists without a
// record (except those made on purpose by CreateStorageLayer).
func (s *Store) CreateLayer(ctx context.Context, opts LayerOptions, diff io.Reader) (*Layer, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return nil, fmt.Errorf("create layer: %w", err)
	}
	defer end()
	l, err := s.createLayer(ctx, opts, diff)
	if err != nil {
		return nil, err
	}
	c := s.layerCopy(l)
	return &c, nil
}

// createLayer is CreateLayer with the write lock held.
func (s *Store) createLayer(ctx context.Context, opts LayerOptions, diff io.Reader) (*Layer, error) {
	if len(opts.UIDMap) > 0 || len(opts.GIDMap) > 0 {
		return nil, fmt.Errorf("create layer %s: %w", opts.ID, ErrIDMapsNotSupported)
	}
	id := opts.ID
	if id == "" {
		id = newID()
	}
	names := dedup(opts.Names)
	if err := s.layers.t.checkNew(id, names); err != nil {
		return nil, err
	}
	parentID := ""
	if opts.Parent != "" {
		parent, ok := s.getLayer(opts.Parent)
		if !ok {
			return nil, fmt.Errorf("create layer %s: parent %q: %w", id, opts.Parent, ErrLayerUnknown)
		}
		if c := s.containerUsingLayer(parent.ID); c != nil {
			return nil, fmt.Errorf("create layer %s: parent %s is the layer of container %s: %w", id, parent.ID, c.ID, ErrParentIsContainer)
		}
		parentID = parent.ID
	}
	l := &Layer{ID: id, Names: names, Parent: parentID, MountLabel: opts.MountLabel,
		Created: time.Now().UTC()}
	switch {
	case opts.Volatile:
		l.loc = locVolatile
	case opts.ReadOnly && s.splitRoot != "":
		l.loc = locSplit // read-only layers live in the split store
	}
	l.setIncomplete(true)
	s.layers.t.add(l)
	if err := s.layers.save(); err != nil {
		s.layers.t.remove(id)
		return nil, fmt.Errorf("create layer %s: %w", id, err)
	}
	fail := func(err error) (*Layer, error) {
		// The rollback outlives the caller's cancellation, not the Store's Close.
		if derr := s.deleteLayer(s.ctx, l); derr != nil {
			s.log.Error("roll back layer", "layer", id, "error", derr)
			err = errors.Join(err, fmt.Errorf("roll back: %w", derr))
		}
		return nil, fmt.Errorf("create layer %s: %w", id, err)
	}
	// dropRecord rolls back when the driver made nothing: no driver to ask, or a Create the
	// driver refused (a layer it already had is not ours to remove).
	dropRecord := func(err error) (*Layer, error) {
		s.layers.t.remove(id)
		if serr := s.layers.save(); serr != nil {
			// The incomplete record is on disk: the next RW open removes it.
			err = errors.Join(err, fmt.Errorf("roll back: %w", serr))
		}
		return nil, fmt.Errorf("create layer %s: %w", id, err)
	}
	d, err := s.driver(ctx)
	if err != nil {
		return dropRecord(err)
	}
	if err := d.Create(ctx, id, parentID, pluginapi.CreateOpts{ReadWrite: !opts.ReadOnly, MountLabel: opts.MountLabel}); err != nil {
		err = s.driverErr(err)
		if isRefusal(err) || errors.Is(err, errdefs.ErrAlreadyExists) {
			return dropRecord(err)
		}
		return fail(err)
	}
	if diff != nil {
		if _, err := s.applyDiff(ctx, d, l, diff); err != nil {
			return fail(err)
		}
	}
	l.setIncomplete(false)
	if err := s.layers.save(); err != nil {
		return fail(err)
	}
	return l, nil
}

// CreateStorageLayer creates a layer in the driver only, with no record (what `check` reports
// as not accounted for). It returns the ID.
func (s *Store) CreateStorageLayer(ctx context.Context, opts LayerOptions) (string, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return "", fmt.Errorf("create storage layer: %w", err)
	}
	defer end()
	if len(opts.UIDMap) > 0 || len(opts.GIDMap) > 0 {
		return "", fmt.Errorf("create storage layer %s: %w", opts.ID, ErrIDMapsNotSupported)
	}
	id := opts.ID
	if id == "" {
		id = newID()
	}
	parentID := ""
	if opts.Parent != "" {
		p, ok := s.getLayer(opts.Parent)
		if !ok {
			return "", fmt.Errorf("create storage layer %s: parent %q: %w", id, opts.Parent, ErrLayerUnknown)
		}
		parentID = p.ID
	}
	d, err := s.driver(ctx)
	if err != nil {
		return "", fmt.Errorf("create storage layer %s: %w", id, err)
	}
	if err := d.Create(ctx, id, parentID, pluginapi.CreateOpts{ReadWrite: !opts.ReadOnly, MountLabel: opts.MountLabel}); err != nil {
		return "", fmt.Errorf("create storage layer %s: %w", id, s.driverErr(err))
	}
	return id, nil
}

// deleteLayer removes layer l with no dependency checks: it unmounts it fully, marks the record
// incomplete (saved), removes the driver layer, tar-split and big data, then the record. A
// crash midway leaves an incomplete record that the next RW open finishes deleting.
//
// A driver that refuses the removal (ErrInUse, ErrNotSupported or ErrInvalidArgument: nothing
// was removed, as zfs refusing a layer with dependent clones) leaves the layer as it was: the
// incomplete flag this call set is cleared again and saved. Any other driver error (the plugin
// died, an I/O error midway) keeps the record incomplete, for the next RW open to finish.
// Write lock held.
func (s *Store) deleteLayer(ctx context.Context, l *Layer) error {
	if n, _ := s.mounts.count(l.ID); n > 0 {
		if _, err := s.unmountLayer(ctx, l.ID, true); err != nil {
			return fmt.Errorf("delete layer %s: %w", l.ID, err)
		}
	}
	wasIncomplete := l.incomplete()
	if !wasIncomplete {
		l.setIncomplete(true)
		if err := s.layers.save(); err != nil {
			l.setIncomplete(false)
			return fmt.Errorf("delete layer %s: %w", l.ID, err)
		}
	}
	d, err := s.driver(ctx)
	if err != nil {
		return fmt.Errorf("delete layer %s: %w", l.ID, errors.Join(err, s.restoreLayer(l, wasIncomplete)))
	}
	if err := d.Remove(ctx, l.ID); err != nil && !isNotFound(err) {
		err = s.driverErr(err)
		if isRefusal(err) {
			err = errors.Join(err, s.restoreLayer(l, wasIncomplete))
		}
		return fmt.Errorf("delete layer %s: %w", l.ID, err)
	}
	var errs []error
	for _, p := range []string{s.tarSplitFor(l), s.tarSplitFor(l) + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(s.layerDataDir(l)); err != nil {
		errs = append(errs, err)
	}
	s.layers.t.remove(l.ID)
	delete(s.removeFailed, l.ID)
	if err := s.layers.save(); err != nil {
		return fmt.Errorf("delete layer %s: %w", l.ID, errors.Join(append([]error{err}, errs...)...))
	}
	if len(errs) > 0 {
		s.log.Warn("delete layer: leftover files", "layer", l.ID, "error", errors.Join(errs...))
	}
	return nil
}

// isRefusal reports whether a driver error says the driver removed nothing because it
// refused: the layer is in use, or the request is not one it can carry out.
func isRefusal(err error) bool {
	return errors.Is(err, errdefs.ErrInUse) || errors.Is(err, errdefs.ErrNotSupported) ||
		errors.Is(err, errdefs.ErrInvalidArgument)
}

// restoreLayer undoes deleteLayer's incomplete flag after the driver removed nothing: a record
// that was complete is saved complete again. A record that was already incomplete (a failed
// create, a killed process) stays so. Write lock held.
func (s *Store) restoreLayer(l *Layer, wasIncomplete bool) error {
	if wasIncomplete {
		return nil
	}
	l.setIncomplete(false)
	if err := s.layers.save(); err != nil {
		return fmt.Errorf("restore record: %w", err)
	}
	return nil
}

// removeIncompleteLayers deletes every layer left incomplete by a killed process, children
// first. A layer that cannot be removed (no plugin, the driver refuses, an I/O error) does not
// fail the method that found it, so a store with such a layer still opens and works: it is
// logged (Warn, naming the layer and the error), keeps its incomplete record (which lookups
// and listings show, and Check reports), and is tried again by the next Store opened
// read-write, not by this one. Write lock held.
func (s *Store) removeIncompleteLayers() {
	var victims []*Layer
	for i := len(s.layers.t.items) - 1; i >= 0; i-- {
		if l := s.layers.t.items[i]; l.incomplete() && !s.removeFailed[l.ID] {
			victims = append(victims, l)
		}
	}
	for _, l := range victims {
		s.log.Info("removing incomplete layer", "layer", l.ID)
		if err := s.deleteLayer(s.ctx, l); err != nil {
			s.removeFailed[l.ID] = true
			s.log.Warn("cannot remove incomplete layer; keeping its record until the next open", "layer", l.ID, "error", err)
		}
	}
}

// DeleteLayer deletes a layer. It is refused while a child layer, an image or a container
// depends on it; the error names the dependant. A mounted layer is unmounted first.
func (s *Store) DeleteLayer(ctx context.Context, ref string) error {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("delete layer %s: %w", ref, err)
	}
	defer end()
	l, err := s.rwLayer(ref)
	if err != nil {
		return fmt.Errorf("delete layer: %w", err)
	}
	if err := s.layerDependants(l.ID); err != nil {
		return fmt.Errorf("delete layer %s: %w", l.ID, err)
	}
	return s.deleteLayer(ctx, l)
}

// layerDependants returns an error naming the first item that needs layer id.
func (s *Store) layerDependants(id string) error {
	for _, c := range s.layers.t.items {
		if c.Parent == id {
			return fmt.Errorf("used by layer %s: %w", c.ID, ErrLayerHasChildren)
		}
	}
	for _, img := range s.images.t.items {
		if img.TopLayer == id {
			return fmt.Errorf("used by image %s: %w", img.ID, ErrLayerUsedByImage)
		}
		for _, m := range img.MappedTopLayers {
			if m == id {
				return fmt.Errorf("used by image %s: %w", img.ID, ErrLayerUsedByImage)
			}
		}
	}
	if c := s.containerUsingLayer(id); c != nil {
		return fmt.Errorf("used by container %s: %w", c.ID, ErrLayerUsedByContainer)
	}
	return nil
}

func (s *Store) containerUsingLayer(id string) *Container {
	for _, c := range s.containers.t.items {
		if c.LayerID == id {
			return c
		}
	}
	return nil
}

// layerCopy returns a copy of l with its mount point and count filled in.
func (s *Store) layerCopy(l *Layer) Layer {
	c := copyLayer(l)
	c.MountCount, c.MountPoint = s.mounts.count(l.ID)
	c.ReadOnly = s.readOnly || l.store != ""
	return c
}

// Layer returns the layer ref names. It does not start the driver.
func (s *Store) Layer(ref string) (*Layer, error) {
	end, err := s.beginRead(kLayers | kMounts)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", ref, err)
	}
	defer end()
	l, ok := s.getLayer(ref)
	if !ok {
		return nil, fmt.Errorf("layer %q: %w", ref, ErrLayerUnknown)
	}
	c := s.layerCopy(l)
	return &c, nil
}

// Layers lists every layer, oldest first. It does not start the driver.
func (s *Store) Layers() ([]Layer, error) {
	end, err := s.beginRead(kLayers | kMounts)
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	defer end()
	all := s.allLayers()
	out := make([]Layer, 0, len(all))
	for _, l := range all {
		out = append(out, s.layerCopy(l))
	}
	return out, nil
}

// StorageLayers lists the layer IDs the driver holds (records or not).
func (s *Store) StorageLayers(ctx context.Context) ([]string, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(false)
	if err != nil {
		return nil, fmt.Errorf("list storage layers: %w", err)
	}
	defer end()
	d, err := s.driver(ctx)
	if err != nil {
		return nil, fmt.Errorf("list storage layers: %w", err)
	}
	ids, err := d.ListLayers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list storage layers: %w", s.driverErr(err))
	}
	return ids, nil
}

// LayerParentOwners returns the UIDs and GIDs that own files in the layer's parent and that the
// layer's ID mapping cannot represent. Layers are never ID-mapped here, so both are empty.
func (s *Store) LayerParentOwners(ref string) (uids, gids []int, err error) {
	if _, err := s.Layer(ref); err != nil {
		return nil, nil, fmt.Errorf("layer parent owners: %w", err)
	}
	return nil, nil, nil
}

// ContainerParentOwners is LayerParentOwners for a container's layer.
func (s *Store) ContainerParentOwners(ref string) (uids, gids []int, err error) {
	if _, err := s.Container(ref); err != nil {
		return nil, nil, fmt.Errorf("container parent owners: %w", err)
	}
	return nil, nil, nil
}

func (s *Store) hasChild(id string) bool {
	for _, l := range s.layers.t.items {
		if l.Parent == id {
			return true
		}
	}
	return false
}
