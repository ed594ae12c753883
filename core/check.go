package core

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/archive/tar"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/pluggable-storage/storage/errdefs"
)

// Check findings (SPEC-disk §3.10). The report keys errors by item ID; the CLI prints
// "layer <id>:" and then each error.
var (
	ErrLayerUnaccounted    = errdefs.Sentinel(errdefs.ErrCorrupt, "layer in lower level storage driver not accounted for")
	ErrLayerUnreferenced   = errdefs.Sentinel(errdefs.ErrCorrupt, "layer not referenced by any images or containers")
	ErrLayerMissing        = errdefs.Sentinel(errdefs.ErrCorrupt, "layer is missing")
	ErrImageLayerMissing   = errdefs.Sentinel(errdefs.ErrCorrupt, "image layer is missing")
	ErrImageMissing        = errdefs.Sentinel(errdefs.ErrCorrupt, "image missing")
	ErrContainerLayerGone  = errdefs.Sentinel(errdefs.ErrCorrupt, "container layer is missing")
	ErrLayerDataMissing    = errdefs.Sentinel(errdefs.ErrCorrupt, "layer data item is missing")
	ErrImageDataMissing    = errdefs.Sentinel(errdefs.ErrCorrupt, "image data item is missing")
	ErrImageDataSize       = errdefs.Sentinel(errdefs.ErrCorrupt, "image data item has incorrect size")
	ErrImageDataDigest     = errdefs.Sentinel(errdefs.ErrCorrupt, "image data item has incorrect digest")
	ErrContainerDataGone   = errdefs.Sentinel(errdefs.ErrCorrupt, "container data item is missing")
	ErrContainerDataSize   = errdefs.Sentinel(errdefs.ErrCorrupt, "container data item has incorrect size")
	ErrContainerDataDigest = errdefs.Sentinel(errdefs.ErrCorrupt, "container data item has incorrect digest")
	ErrLayerContentDigest  = errdefs.Sentinel(errdefs.ErrCorrupt, "layer content incorrect digest")
	ErrLayerContentSize    = errdefs.Sentinel(errdefs.ErrCorrupt, "layer content incorrect size")
	ErrLayerModified       = errdefs.Sentinel(errdefs.ErrCorrupt, "layer content modified")
	// ErrLayerIncomplete: the record is flagged incomplete (a create or delete that did not
	// finish) and this Store could not remove it; Repair deletes it.
	ErrLayerIncomplete = errdefs.Sentinel(errdefs.ErrCorrupt, "layer is incomplete")
)

// CheckOptions are the options of Check.
type CheckOptions struct {
	// Quick skips reading layer contents (digests and modified files).
	Quick bool
	// LayerUnreferencedMaximumAge: a layer no image or container uses is reported once it is
	// older than this (nil = 24h).
	LayerUnreferencedMaximumAge *time.Duration
}

// CheckReport lists the problems found, by item ID. Read-only stores are not supported, so
// ROLayers and ROImages stay empty.
type CheckReport struct {
	Layers     map[string][]error
	ROLayers   map[string][]error
	Images     map[string][]error
	ROImages   map[string][]error
	Containers map[string][]error
}

// Empty reports whether the check found nothing.
func (r CheckReport) Empty() bool {
	return len(r.Layers)+len(r.ROLayers)+len(r.Images)+len(r.ROImages)+len(r.Containers) == 0
}

// RepairOptions are the options of Repair.
type RepairOptions struct {
	// RemoveContainers allows removing containers whose layer or image is damaged.
	RemoveContainers bool
}

// Check verifies the records against the driver and the data files: every layer exists in the
// driver and every driver layer has a record; unreferenced old layers; big-data files exist with
// their recorded size and digest; images' layers and containers' images and layers exist; and,
// unless Quick, that each layer made from a tar still rebuilds to its recorded diff digest and
// holds no file the tar did not have.
func (s *Store) Check(ctx context.Context, opts CheckOptions) (CheckReport, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	r := CheckReport{Layers: map[string][]error{}, ROLayers: map[string][]error{}, Images: map[string][]error{},
		ROImages: map[string][]error{}, Containers: map[string][]error{}}
	end, err := s.begin(true)
	if err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	defer end()
	d, err := s.driver(ctx)
	if err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	maxAge := 24 * time.Hour
	if opts.LayerUnreferencedMaximumAge != nil {
		maxAge = *opts.LayerUnreferencedMaximumAge
	}
	add := func(m map[string][]error, id string, err error) { m[id] = append(m[id], err) }

	driverIDs, err := d.ListLayers(ctx)
	if err != nil && !errors.Is(err, errdefs.ErrNotSupported) {
		return r, fmt.Errorf("check: %w", s.driverErr(err))
	}
	inDriver := map[string]bool{}
	for _, id := range driverIDs {
		inDriver[id] = true
		if _, ok := s.layers.t.byID[id]; !ok {
			add(r.Layers, id, ErrLayerUnaccounted)
		}
	}
	referenced := map[string]bool{}
	mark := func(id string) {
		for id != "" && !referenced[id] {
			referenced[id] = true
			if l, ok := s.layers.t.byID[id]; ok {
				id = l.Parent
			} else {
				id = ""
			}
		}
	}
	for _, img := range s.images.t.items {
		mark(img.TopLayer)
		for _, m := range img.MappedTopLayers {
			mark(m)
		}
	}
	for _, c := range s.containers.t.items {
		mark(c.LayerID)
	}
	for _, l := range s.layers.t.items {
		if l.incomplete() {
			// Its contents are whatever the unfinished operation left: nothing more to verify.
			add(r.Layers, l.ID, ErrLayerIncomplete)
			continue
		}
		if driverIDs != nil && !inDriver[l.ID] {
			add(r.Layers, l.ID, ErrLayerMissing)
			continue
		}
		if !referenced[l.ID] && time.Since(l.Created) > maxAge {
			add(r.Layers, l.ID, ErrLayerUnreferenced)
		}
		for _, k := range l.BigDataNames {
			if _, err := os.Stat(filepath.Join(s.layerDataDir(l), bigDataFileName(k))); err != nil {
				add(r.Layers, l.ID, fmt.Errorf("data item %q: %w", k, ErrLayerDataMissing))
			}
		}
		if !opts.Quick && l.UncompressedDigest != "" {
			for _, err := range s.checkLayerContent(ctx, l) {
				add(r.Layers, l.ID, err)
			}
		}
	}
	for _, img := range s.images.t.items {
		for id := img.TopLayer; id != ""; {
			l, ok := s.layers.t.byID[id]
			if !ok {
				add(r.Images, img.ID, fmt.Errorf("layer %s: %w", id, ErrImageLayerMissing))
				break
			}
			id = l.Parent
		}
		checkData(r.Images, img.ID, s.imageDataDir(img), img.BigDataNames, img.BigDataSizes, img.BigDataDigests,
			ErrImageDataMissing, ErrImageDataSize, ErrImageDataDigest)
	}
	for _, c := range s.containers.t.items {
		if c.ImageID != "" {
			if _, ok := s.images.t.byID[c.ImageID]; !ok {
				add(r.Containers, c.ID, fmt.Errorf("image %s: %w", c.ImageID, ErrImageMissing))
			}
		}
		if _, ok := s.layers.t.byID[c.LayerID]; !ok {
			add(r.Containers, c.ID, fmt.Errorf("layer %s: %w", c.LayerID, ErrContainerLayerGone))
		}
		checkData(r.Containers, c.ID, filepath.Join(s.dir("containers"), c.ID), c.BigDataNames, c.BigDataSizes, c.BigDataDigests,
			ErrContainerDataGone, ErrContainerDataSize, ErrContainerDataDigest)
	}
	return r, nil
}

func checkData(m map[string][]error, id, dir string, names []string, sizes map[string]int64, digests map[string]digest.Digest,
	missing, badSize, badDigest error) {
	for _, k := range names {
		data, err := os.ReadFile(filepath.Join(dir, bigDataFileName(k)))
		if err != nil {
			m[id] = append(m[id], fmt.Errorf("data item %q: %w", k, missing))
			continue
		}
		if n, ok := sizes[k]; ok && n != int64(len(data)) {
			m[id] = append(m[id], fmt.Errorf("data item %q: %w", k, badSize))
			continue
		}
		if want, ok := digests[k]; ok && want.Validate() == nil && !isManifestKey(k) && want.Algorithm().FromBytes(data) != want {
			m[id] = append(m[id], fmt.Errorf("data item %q: %w", k, badDigest))
		}
	}
}

// checkLayerContent rebuilds the layer's tar from its tar-split and the mounted contents and
// compares it with the recorded diff digest and size; then it reports paths the driver sees
// as changed that the tar did not carry ("+/path"). Write lock held.
func (s *Store) checkLayerContent(ctx context.Context, l *Layer) []error {
	f, err := os.Open(s.tarSplitFor(l))
	if err != nil {
		return nil // not created from a tar stream here: nothing to compare with
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	if err != nil {
		return []error{withClass(err, errdefs.ErrUnavailable)}
	}
	mountpoint, err := s.mountLayer(ctx, l, MountOptions{}, true)
	if err != nil {
		return []error{err}
	}
	defer s.unmountLayer(ctx, l.ID, false)
	var errs []error
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return []error{fmt.Errorf("tar-split: %w", withClass(err, errdefs.ErrCorrupt))}
	}
	dg := digest.Canonical.Digester()
	n, err := io.Copy(dg.Hash(), asm.NewOutputTarStream(storage.NewPathFileGetter(mountpoint), storage.NewJSONUnpacker(gz)))
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("%v: %w", err, ErrLayerContentDigest))
	case dg.Digest() != l.UncompressedDigest:
		errs = append(errs, ErrLayerContentDigest)
	case n != l.UncompressedSize:
		errs = append(errs, ErrLayerContentSize)
	}
	inTar := map[string]bool{}
	gz2, err := gzip.NewReader(bytes.NewReader(raw))
	if err == nil {
		_ = asm.IterateHeaders(storage.NewJSONUnpacker(gz2), func(h *tar.Header) error {
			p := path.Clean("/" + h.Name)
			dir, base := path.Split(p)
			if strings.HasPrefix(base, ".wh.") {
				p = path.Join(dir, strings.TrimPrefix(base, ".wh."))
			}
			for ; p != "/"; p = path.Dir(p) {
				inTar[p] = true
			}
			return nil
		})
	}
	d, err := s.driver(ctx)
	if err != nil {
		return append(errs, err)
	}
	changes, err := d.Changes(ctx, l.ID, l.Parent)
	if err != nil {
		return append(errs, s.driverErr(err))
	}
	for _, c := range changes {
		if !inTar[c.Path] {
			errs = append(errs, fmt.Errorf("+%s, %w", c.Path, ErrLayerModified))
		}
	}
	return errs
}

// Repair removes what report found damaged: containers whose layer or image is damaged (only
// with RemoveContainers), images whose layers are damaged or missing, damaged layers with the
// layers above them, and driver layers no record accounts for. It returns the errors met.
func (s *Store) Repair(ctx context.Context, report CheckReport, opts RepairOptions) []error {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return []error{fmt.Errorf("repair: %w", err)}
	}
	defer end()
	var errs []error
	damaged := map[string]bool{}
	for id := range report.Layers {
		damaged[id] = true
	}
	// Everything above a damaged layer is damaged too.
	for changed := true; changed; {
		changed = false
		for _, l := range s.layers.t.items {
			if !damaged[l.ID] && damaged[l.Parent] {
				damaged[l.ID], changed = true, true
			}
		}
	}
	chainDamaged := func(id string) bool {
		for id != "" {
			if damaged[id] {
				return true
			}
			l, ok := s.layers.t.byID[id]
			if !ok {
				return true
			}
			id = l.Parent
		}
		return false
	}
	for _, c := range append([]*Container(nil), s.containers.t.items...) {
		if _, bad := report.Containers[c.ID]; !bad && !damaged[c.LayerID] {
			continue
		}
		if !opts.RemoveContainers {
			errs = append(errs, fmt.Errorf("repair: container %s is damaged; removing containers was not allowed: %w", c.ID, errdefs.ErrInUse))
			damaged[c.LayerID] = false
			continue
		}
		if err := s.deleteContainer(ctx, c, true); err != nil {
			errs = append(errs, fmt.Errorf("repair: %w", err))
		}
	}
	for _, img := range append([]*Image(nil), s.images.t.items...) {
		if _, bad := report.Images[img.ID]; bad || chainDamaged(img.TopLayer) {
			if err := s.removeImage(img); err != nil {
				errs = append(errs, fmt.Errorf("repair: %w", err))
			}
		}
	}
	for i := len(s.layers.t.items) - 1; i >= 0; i-- {
		if i >= len(s.layers.t.items) {
			continue
		}
		l := s.layers.t.items[i]
		if damaged[l.ID] && s.containerUsingLayer(l.ID) == nil && !s.hasChild(l.ID) {
			if err := s.deleteLayer(ctx, l); err != nil {
				errs = append(errs, fmt.Errorf("repair: %w", err))
			}
		}
	}
	d, err := s.driver(ctx)
	if err != nil {
		return append(errs, fmt.Errorf("repair: %w", err))
	}
	for id, list := range report.Layers {
		if _, ok := s.layers.t.byID[id]; ok {
			continue
		}
		for _, e := range list {
			if errors.Is(e, ErrLayerUnaccounted) {
				if err := d.Remove(ctx, id); err != nil {
					errs = append(errs, fmt.Errorf("repair: driver layer %s: %w", id, s.driverErr(err)))
				}
			}
		}
	}
	return errs
}
