package core

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pluggable-storage/storage/core/internal/atomicfile"
	"github.com/pluggable-storage/storage/core/internal/lockfile"
	"github.com/pluggable-storage/storage/errdefs"
)

// roStore is an additional, read-only image store (SPEC-disk §1.6): a complete graph root
// named by a "<driver>.imagestore=" (or "additionalimagestore") driver option, whose
// layers.json and images.json are searched after this store's own. Its records load with
// ReadOnly set; its lock files are opened read-only and only ever locked shared. The driver gets
// the same option and finds the layer contents there itself.
type roStore struct {
	root   string
	layers *kindStore[Layer, *Layer]
	images *kindStore[Image, *Image]
}

// additionalImageStores returns the roots named by imagestore options for driver.
func additionalImageStores(driver string, opts []string) []string {
	var roots []string
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		prefix, name := "", k
		if i := strings.LastIndex(k, "."); i >= 0 {
			prefix, name = k[:i], k[i+1:]
		}
		if prefix != "" && prefix != driver && !(driver == "overlay" && prefix == "overlay2") {
			continue
		}
		if name != "imagestore" && name != "additionalimagestore" {
			continue
		}
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				roots = append(roots, filepath.Clean(p))
			}
		}
	}
	return roots
}

// openROStore opens the lock files of one additional image store, read-only.
func (s *Store) openROStore(root string) (*roStore, *lockfile.LockFile, *lockfile.LockFile, error) {
	ld := filepath.Join(root, s.driverName+"-layers")
	id := filepath.Join(root, s.driverName+"-images")
	ll, err := lockfile.Open(filepath.Join(ld, "layers.lock"), true)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open additional image store %s: %w", root, err)
	}
	il, err := lockfile.Open(filepath.Join(id, "images.lock"), true)
	if err != nil {
		ll.Close()
		return nil, nil, nil, fmt.Errorf("open additional image store %s: %w", root, err)
	}
	return &roStore{
		root:   root,
		layers: newKindStore[Layer, *Layer]("layer", map[int]*jsonFile{locStable: {path: filepath.Join(ld, "layers.json"), lock: ll}}),
		images: newKindStore[Image, *Image]("image", map[int]*jsonFile{locStable: {path: filepath.Join(id, "images.json"), lock: il}}),
	}, ll, il, nil
}

// refreshROLayers and refreshROImages reload the read-only stores that changed and mark
// their records. Locks held.
func (s *Store) refreshROLayers() error {
	for _, r := range s.ro {
		reloaded, err := r.layers.refresh()
		if err != nil {
			return err
		}
		if reloaded {
			for _, l := range r.layers.t.items {
				l.ReadOnly, l.store = true, r.root
			}
			r.layers.needSave = false
		}
	}
	return nil
}

func (s *Store) refreshROImages() error {
	for _, r := range s.ro {
		reloaded, err := r.images.refresh()
		if err != nil {
			return err
		}
		if reloaded {
			for _, img := range r.images.t.items {
				img.ReadOnly, img.store = true, r.root
				recomputeDigests(img)
			}
			r.images.needSave = false
			s.imagesChanged()
		}
	}
	return nil
}

// getLayer resolves ref among this store's layers, then the read-only stores'.
func (s *Store) getLayer(ref string) (*Layer, bool) {
	if l, ok := s.layers.t.get(ref); ok {
		return l, true
	}
	for _, r := range s.ro {
		if l, ok := r.layers.t.get(ref); ok {
			return l, true
		}
	}
	return nil, false
}

func (s *Store) layerByID(id string) (*Layer, bool) {
	if l, ok := s.layers.t.byID[id]; ok {
		return l, true
	}
	for _, r := range s.ro {
		if l, ok := r.layers.t.byID[id]; ok {
			return l, true
		}
	}
	return nil, false
}

// rwLayer resolves ref to a layer of this store; a read-only store's layer is
// ErrStoreIsReadOnly.
func (s *Store) rwLayer(ref string) (*Layer, error) {
	if l, ok := s.layers.t.get(ref); ok {
		return l, nil
	}
	if l, ok := s.getLayer(ref); ok {
		return nil, fmt.Errorf("layer %s in %s: %w", l.ID, l.store, ErrStoreIsReadOnly)
	}
	return nil, fmt.Errorf("layer %q: %w", ref, ErrLayerUnknown)
}

// allLayers lists this store's layers, then the read-only stores'.
func (s *Store) allLayers() []*Layer {
	out := append([]*Layer(nil), s.layers.t.items...)
	for _, r := range s.ro {
		out = append(out, r.layers.t.items...)
	}
	return out
}

// getImage resolves ref among this store's images, then the read-only stores'. A read-only
// image that was pulled up (same ID here) is shadowed by its copy.
func (s *Store) getImage(ref string) (*Image, bool) {
	if img, ok := s.images.t.get(ref); ok {
		return img, true
	}
	for _, r := range s.ro {
		if img, ok := r.images.t.get(ref); ok {
			if _, shadowed := s.images.t.byID[img.ID]; shadowed {
				continue
			}
			return img, true
		}
	}
	return nil, false
}

func (s *Store) imageByID(id string) (*Image, bool) {
	if img, ok := s.images.t.byID[id]; ok {
		return img, true
	}
	for _, r := range s.ro {
		if img, ok := r.images.t.byID[id]; ok {
			return img, true
		}
	}
	return nil, false
}

func (s *Store) rwImage(ref string) (*Image, error) {
	if img, ok := s.images.t.get(ref); ok {
		return img, nil
	}
	if img, ok := s.getImage(ref); ok {
		return nil, fmt.Errorf("image %s in %s: %w", img.ID, img.store, ErrStoreIsReadOnly)
	}
	return nil, fmt.Errorf("image %q: %w", ref, ErrImageUnknown)
}

// allImages lists this store's images, then the read-only stores' that are not shadowed.
func (s *Store) allImages() []*Image {
	out := append([]*Image(nil), s.images.t.items...)
	for _, r := range s.ro {
		for _, img := range r.images.t.items {
			if _, shadowed := s.images.t.byID[img.ID]; !shadowed {
				out = append(out, img)
			}
		}
	}
	return out
}

// layersDirOf is the <driver>-layers directory holding l's tar-split and big data.
func (s *Store) layersDirOf(l *Layer) string {
	switch {
	case l.store != "":
		return filepath.Join(l.store, s.driverName+"-layers")
	case l.loc == locSplit && s.splitRoot != "":
		return s.splitDir("layers")
	}
	return s.dir("layers")
}

func (s *Store) layerDataDir(l *Layer) string { return filepath.Join(s.layersDirOf(l), l.ID) }

func (s *Store) tarSplitFor(l *Layer) string {
	return filepath.Join(s.layersDirOf(l), l.ID+".tar-split.gz")
}

// imageDataDir is the directory of img's big data (and userdata).
func (s *Store) imageDataDir(img *Image) string {
	switch {
	case img.store != "":
		return filepath.Join(img.store, s.driverName+"-images", img.ID)
	case img.loc == locSplit && s.splitRoot != "":
		return filepath.Join(s.splitDir("images"), img.ID)
	}
	return filepath.Join(s.dir("images"), img.ID)
}

// pullUpImage copies a read-only image, big data included, into this store's images (the
// established tool's way of letting names change on read-only images). The copy shadows the
// original from then on. Write lock held; the caller saves.
func (s *Store) pullUpImage(img *Image) (*Image, error) {
	c := copyImage(img)
	c.ReadOnly, c.store, c.loc = false, "", locStable
	if s.splitRoot != "" {
		c.loc = locSplit
	}
	src, dst := s.imageDataDir(img), s.imageDataDir(&c)
	for _, k := range img.BigDataNames {
		data, err := os.ReadFile(filepath.Join(src, bigDataFileName(k)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pull up image %s: %w", img.ID, withClass(err, errdefs.ErrUnavailable))
		}
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return nil, fmt.Errorf("pull up image %s: %w", img.ID, withClass(err, errdefs.ErrUnavailable))
		}
		if err := atomicfile.WriteFile(filepath.Join(dst, bigDataFileName(k)), data, 0o600, false); err != nil {
			return nil, fmt.Errorf("pull up image %s: %w", img.ID, withClass(err, errdefs.ErrUnavailable))
		}
	}
	names := c.Names
	c.Names = nil
	s.images.t.add(&c)
	s.images.t.setNames(&c, names)
	s.imagesChanged()
	return &c, nil
}
