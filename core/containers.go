package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pluggable-storage/storage/errdefs"
)

// ContainerOptions are the options of CreateContainer.
type ContainerOptions struct {
	ID         string // "" = a random 64-hex ID
	Names      []string
	Metadata   string
	MountLabel string
	// Volatile keeps the container and its layer in the volatile-*.json files (no fsync).
	// Every container of a transient store is volatile.
	Volatile bool
	// MountOpts are recorded in the container's flags for whoever mounts it.
	MountOpts []string
	// UIDMap and GIDMap ask for an ID-mapped container: not supported yet.
	UIDMap, GIDMap []IDMap
}

// CreateContainer creates a container on image ("" = none): a new read-write layer whose
// parent is the image's top layer (a base layer without an image), the record, and the
// container's userdata directories in the graph root and the run root.
func (s *Store) CreateContainer(ctx context.Context, image string, opts ContainerOptions) (*Container, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	defer end()
	if len(opts.UIDMap) > 0 || len(opts.GIDMap) > 0 {
		return nil, fmt.Errorf("create container %s: %w", opts.ID, ErrIDMapsNotSupported)
	}
	id := opts.ID
	if id == "" {
		id = newID()
	}
	names := dedup(opts.Names)
	if err := s.containers.t.checkNew(id, names); err != nil {
		return nil, err
	}
	imageID, parent := "", ""
	if image != "" {
		img, ok := s.getImage(image)
		if !ok {
			return nil, fmt.Errorf("create container %s: image %q: %w", id, image, ErrImageUnknown)
		}
		imageID, parent = img.ID, img.TopLayer
	}
	volatile := opts.Volatile || s.opts.TransientStore
	l, err := s.createLayer(ctx, LayerOptions{Parent: parent, MountLabel: opts.MountLabel, Volatile: volatile}, nil)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	c := &Container{ID: id, Names: names, ImageID: imageID, LayerID: l.ID, Metadata: opts.Metadata,
		Created: time.Now().UTC(),
		Flags:   map[string]interface{}{"MountLabel": opts.MountLabel, "ProcessLabel": ""}}
	if len(opts.MountOpts) > 0 {
		// As JSON decodes it, so a record reads the same before and after a reload.
		mo := make([]interface{}, len(opts.MountOpts))
		for i, o := range opts.MountOpts {
			mo[i] = o
		}
		c.Flags["MountOpts"] = mo
	}
	if volatile {
		c.loc = locVolatile
		c.Flags["Volatile"] = true
	}
	s.containers.t.add(c)
	fail := func(err error) (*Container, error) {
		s.containers.t.remove(id)
		if derr := s.deleteLayer(ctx, l); derr != nil {
			err = errors.Join(err, fmt.Errorf("roll back layer %s: %w", l.ID, derr))
		}
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	for _, d := range []string{filepath.Join(s.dir("containers"), id, "userdata"), filepath.Join(s.runDir("containers"), id, "userdata")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fail(err)
		}
	}
	if err := s.containers.save(); err != nil {
		return fail(err)
	}
	cc := copyContainer(c)
	return &cc, nil
}

// Container returns the container ref names.
func (s *Store) Container(ref string) (*Container, error) {
	end, err := s.beginRead(kContainers)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", ref, err)
	}
	defer end()
	c, ok := s.containers.t.get(ref)
	if !ok {
		return nil, fmt.Errorf("container %q: %w", ref, ErrContainerUnknown)
	}
	cc := copyContainer(c)
	return &cc, nil
}

// Containers lists every container, oldest first.
func (s *Store) Containers() ([]Container, error) {
	end, err := s.beginRead(kContainers)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	defer end()
	out := make([]Container, 0, len(s.containers.t.items))
	for _, c := range s.containers.t.items {
		out = append(out, copyContainer(c))
	}
	return out, nil
}

// DeleteContainer deletes a container: its layer (unmounted first), then its whole directories
// in the graph root and the run root, then its record.
func (s *Store) DeleteContainer(ctx context.Context, ref string) error {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("delete container %s: %w", ref, err)
	}
	defer end()
	c, ok := s.containers.t.get(ref)
	if !ok {
		return fmt.Errorf("delete container %q: %w", ref, ErrContainerUnknown)
	}
	return s.deleteContainer(ctx, c, true)
}

// deleteContainer removes c's record, then its layer, then its directories (whole ones, or
// only the userdata subdirectories). The record goes first so that a crash or a failure midway
// never leaves a container pointing at a missing layer: at worst its layer stays behind,
// unreferenced, for Check and Repair. Write lock held.
func (s *Store) deleteContainer(ctx context.Context, c *Container, wholeDirs bool) error {
	s.containers.t.remove(c.ID)
	if err := s.containers.save(); err != nil {
		s.containers.t.add(c)
		return fmt.Errorf("delete container %s: %w", c.ID, err)
	}
	var errs []error
	if l, ok := s.layers.t.byID[c.LayerID]; ok {
		if err := s.deleteLayer(ctx, l); err != nil {
			errs = append(errs, err)
		}
	}
	for _, base := range []string{s.dir("containers"), s.runDir("containers")} {
		d := filepath.Join(base, c.ID)
		if !wholeDirs {
			d = filepath.Join(d, "userdata")
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, withClass(err, errdefs.ErrUnavailable))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete container %s: %w", c.ID, errors.Join(errs...))
	}
	return nil
}

// ContainerSize returns the bytes of the container's layer (relative to its parent) plus its
// big data.
func (s *Store) ContainerSize(ctx context.Context, ref string) (int64, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(false)
	if err != nil {
		return 0, fmt.Errorf("container size %s: %w", ref, err)
	}
	defer end()
	c, ok := s.containers.t.get(ref)
	if !ok {
		return 0, fmt.Errorf("container size %q: %w", ref, ErrContainerUnknown)
	}
	l, ok := s.layers.t.byID[c.LayerID]
	if !ok {
		return 0, fmt.Errorf("container size %s: layer %q: %w", c.ID, c.LayerID, ErrLayerUnknown)
	}
	d, err := s.driver(ctx)
	if err != nil {
		return 0, fmt.Errorf("container size %s: %w", c.ID, err)
	}
	total, err := d.DiffSize(ctx, l.ID, l.Parent)
	if err != nil {
		return 0, fmt.Errorf("container size %s: %w", c.ID, s.driverErr(err))
	}
	for _, n := range c.BigDataSizes {
		total += n
	}
	return total, nil
}

// ContainerDir returns <graphroot>/D-containers/<id>/userdata, creating it.
func (s *Store) ContainerDir(ref string) (string, error) {
	return s.userdataDir(ref, s.dir("containers"), s.containerID)
}

// ContainerRunDir returns <runroot>/D-containers/<id>/userdata, creating it.
func (s *Store) ContainerRunDir(ref string) (string, error) {
	return s.userdataDir(ref, s.runDir("containers"), s.containerID)
}

func (s *Store) containerID(ref string) (string, bool) {
	if c, ok := s.containers.t.get(ref); ok {
		return c.ID, true
	}
	return "", false
}
