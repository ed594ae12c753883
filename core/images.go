package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pluggable-storage/storage/errdefs"
)

// ImageOptions are the options of CreateImage.
type ImageOptions struct {
	ID       string // "" = a random 64-hex ID
	TopLayer string // ref of the top layer; "" = a layerless image
	Names    []string
	Digest   digest.Digest // explicit digest; else the first manifest big-data digest
	Metadata string
}

// isManifestKey reports whether a big-data key contributes its digest to the image's Digests.
func isManifestKey(key string) bool { return strings.HasPrefix(key, "manifest") }

// recomputeDigests sets img.Digests to the explicit digest plus the digests of every manifest
// big-data item (in big-data order, deduplicated), and defaults img.Digest to the first.
func recomputeDigests(img *Image) {
	var out []digest.Digest
	seen := map[digest.Digest]bool{}
	add := func(d digest.Digest) {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	add(img.Digest)
	for _, k := range img.BigDataNames {
		if isManifestKey(k) {
			add(img.BigDataDigests[k])
		}
	}
	if img.Digest == "" && len(out) > 0 {
		img.Digest = out[0]
	}
	img.Digests = out
}

// addNamesToHistory puts names in front of the image's names history, newest first, without
// repeats.
func addNamesToHistory(img *Image, names []string) {
	for _, n := range names {
		img.NamesHistory = append([]string{n}, without(img.NamesHistory, n)...)
	}
}

// digestIndex maps each digest to the IDs of the images that carry it. It is rebuilt after any
// change to the images table, so ImagesByDigest is a map lookup.
type digestIndex struct {
	byDigest map[digest.Digest][]string
	valid    bool
}

func (s *Store) imagesChanged() { s.digests.valid = false }

func (s *Store) imagesByDigest(d digest.Digest) []*Image {
	if !s.digests.valid {
		s.digests.byDigest = map[digest.Digest][]string{}
		for _, img := range s.allImages() {
			recomputeDigests(img)
			for _, dg := range img.Digests {
				s.digests.byDigest[dg] = append(s.digests.byDigest[dg], img.ID)
			}
		}
		s.digests.valid = true
	}
	var out []*Image
	for _, id := range s.digests.byDigest[d] {
		if img, ok := s.imageByID(id); ok {
			out = append(out, img)
		}
	}
	return out
}

// CreateImage records an image on a top layer (or none).
func (s *Store) CreateImage(ctx context.Context, opts ImageOptions) (*Image, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return nil, fmt.Errorf("create image: %w", err)
	}
	defer end()
	id := opts.ID
	if id == "" {
		id = newID()
	}
	names := dedup(opts.Names)
	if err := s.images.t.checkNew(id, names); err != nil {
		return nil, err
	}
	top := ""
	if opts.TopLayer != "" {
		l, ok := s.getLayer(opts.TopLayer)
		if !ok {
			return nil, fmt.Errorf("create image %s: top layer %q: %w", id, opts.TopLayer, ErrLayerUnknown)
		}
		top = l.ID
	}
	if opts.Digest != "" {
		if err := opts.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("create image %s: digest %q: %w", id, opts.Digest, withClass(err, errdefs.ErrInvalidArgument))
		}
	}
	img := &Image{ID: id, Digest: opts.Digest, Names: names, TopLayer: top, Metadata: opts.Metadata,
		Created: time.Now().UTC()}
	if s.splitRoot != "" {
		img.loc = locSplit // new images go to the split store
	}
	addNamesToHistory(img, names)
	recomputeDigests(img)
	s.images.t.add(img)
	s.imagesChanged()
	if err := s.images.save(); err != nil {
		s.images.t.remove(id)
		return nil, fmt.Errorf("create image %s: %w", id, err)
	}
	c := s.imageCopy(img)
	return &c, nil
}

func (s *Store) imageCopy(img *Image) Image {
	c := copyImage(img)
	c.ReadOnly = s.readOnly || img.store != ""
	return c
}

// Image returns the image ref names (ID, name or unique ID prefix).
func (s *Store) Image(ref string) (*Image, error) {
	end, err := s.beginRead(kImages)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	defer end()
	img, ok := s.getImage(ref)
	if !ok {
		return nil, fmt.Errorf("image %q: %w", ref, ErrImageUnknown)
	}
	c := s.imageCopy(img)
	return &c, nil
}

// Images lists every image, oldest first.
func (s *Store) Images() ([]Image, error) {
	end, err := s.beginRead(kImages)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	defer end()
	all := s.allImages()
	out := make([]Image, 0, len(all))
	for _, img := range all {
		out = append(out, s.imageCopy(img))
	}
	return out, nil
}

// ImagesByDigest returns the images one of whose Digests is d; none is an empty list, not an
// error.
func (s *Store) ImagesByDigest(d digest.Digest) ([]Image, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("images by digest %q: %w", d, withClass(err, errdefs.ErrInvalidArgument))
	}
	end, err := s.beginRead(kImages)
	if err != nil {
		return nil, fmt.Errorf("images by digest %s: %w", d, err)
	}
	defer end()
	out := []Image{}
	for _, img := range s.imagesByDigest(d) {
		out = append(out, s.imageCopy(img))
	}
	return out, nil
}

// DeleteImage deletes an image and the layers only it used: walking down from its top layer,
// each layer that is not a container's, not another image's top layer and not the parent of a
// layer that stays. It is refused while a container uses the image. With commit false nothing
// is changed and the layers that would go are returned.
func (s *Store) DeleteImage(ctx context.Context, ref string, commit bool) ([]string, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(commit)
	if err != nil {
		return nil, fmt.Errorf("delete image %s: %w", ref, err)
	}
	defer end()
	img, err := s.rwImage(ref)
	if err != nil {
		return nil, fmt.Errorf("delete image: %w", err)
	}
	for _, c := range s.containers.t.items {
		if c.ImageID == img.ID {
			return nil, fmt.Errorf("delete image %s: used by container %s: %w", img.ID, c.ID, ErrImageUsedByContainer)
		}
	}
	victims := s.imageOnlyLayers(img)
	if !commit {
		return victims, nil
	}
	if err := s.removeImage(img); err != nil {
		return nil, err
	}
	for i, id := range victims {
		if l, ok := s.layers.t.byID[id]; ok {
			if err := s.deleteLayer(ctx, l); err != nil {
				return victims[:i], fmt.Errorf("delete image %s: %w", img.ID, err)
			}
		}
	}
	return victims, nil
}

// imageOnlyLayers lists, top first, the layers that deleting img would remove.
func (s *Store) imageOnlyLayers(img *Image) []string {
	keep := map[string]bool{}
	for _, c := range s.containers.t.items {
		keep[c.LayerID] = true
	}
	for _, o := range s.allImages() {
		if o.ID == img.ID {
			continue
		}
		keep[o.TopLayer] = true
		for _, m := range o.MappedTopLayers {
			keep[m] = true
		}
	}
	children := map[string][]string{}
	for _, l := range s.layers.t.items {
		if l.Parent != "" {
			children[l.Parent] = append(children[l.Parent], l.ID)
		}
	}
	var victims []string
	from := ""
	for id := img.TopLayer; id != ""; {
		l, ok := s.layers.t.byID[id]
		if !ok || keep[id] {
			break
		}
		stays := false
		for _, c := range children[id] {
			if c != from {
				stays = true
			}
		}
		if stays {
			break
		}
		victims = append(victims, id)
		from, id = id, l.Parent
	}
	return victims
}

// removeImage drops img's record (saved) and its directories. Write lock held.
func (s *Store) removeImage(img *Image) error {
	s.images.t.remove(img.ID)
	s.imagesChanged()
	if err := s.images.save(); err != nil {
		return fmt.Errorf("delete image %s: %w", img.ID, err)
	}
	for _, d := range []string{s.imageDataDir(img), filepath.Join(s.runDir("images"), img.ID)} {
		if err := os.RemoveAll(d); err != nil {
			s.log.Warn("delete image: leftover directory", "image", img.ID, "dir", d, "error", err)
		}
	}
	return nil
}

// ImageSize returns the bytes of an image: its layers' uncompressed sizes plus its big data.
func (s *Store) ImageSize(ctx context.Context, ref string) (int64, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(false)
	if err != nil {
		return 0, fmt.Errorf("image size %s: %w", ref, err)
	}
	defer end()
	img, ok := s.getImage(ref)
	if !ok {
		return 0, fmt.Errorf("image size %q: %w", ref, ErrImageUnknown)
	}
	var total int64
	for id := img.TopLayer; id != ""; {
		l, ok := s.layerByID(id)
		if !ok {
			return 0, fmt.Errorf("image size %s: layer %q: %w", img.ID, id, ErrLayerUnknown)
		}
		n, err := s.layerSize(ctx, l)
		if err != nil {
			return 0, fmt.Errorf("image size %s: %w", img.ID, err)
		}
		total += n
		id = l.Parent
	}
	for _, n := range img.BigDataSizes {
		total += n
	}
	return total, nil
}

// layerSize is the layer's recorded uncompressed size, or the driver's DiffSize for layers
// not created from a tar.
func (s *Store) layerSize(ctx context.Context, l *Layer) (int64, error) {
	if l.UncompressedDigest != "" {
		return l.UncompressedSize, nil
	}
	d, err := s.driver(ctx)
	if err != nil {
		return 0, err
	}
	n, err := d.DiffSize(ctx, l.ID, l.Parent)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", l.ID, s.driverErr(err))
	}
	return n, nil
}

// ImageDir returns <graphroot>/D-images/<id>/userdata (the split store's for its images),
// creating it. An unknown ref is used as the ID, as the established tool does.
func (s *Store) ImageDir(ref string) (string, error) {
	base := s.dir("images")
	if s.splitRoot != "" {
		base = s.splitDir("images")
	}
	end, err := s.begin(false)
	if err != nil {
		return "", fmt.Errorf("directory of %s: %w", ref, err)
	}
	if img, ok := s.getImage(ref); ok {
		base = filepath.Dir(s.imageDataDir(img))
	}
	end()
	return s.userdataDir(ref, base, s.imageID)
}

// ImageRunDir returns <runroot>/D-images/<id>/userdata, creating it.
func (s *Store) ImageRunDir(ref string) (string, error) {
	return s.userdataDir(ref, s.runDir("images"), s.imageID)
}

func (s *Store) imageID(ref string) (string, bool) {
	if img, ok := s.getImage(ref); ok {
		return img.ID, true
	}
	return ref, false
}

func (s *Store) userdataDir(ref, base string, resolve func(string) (string, bool)) (string, error) {
	end, err := s.begin(false)
	if err != nil {
		return "", fmt.Errorf("directory of %s: %w", ref, err)
	}
	id, ok := resolve(ref)
	end()
	if !ok && id == "" {
		return "", fmt.Errorf("directory of container %q: %w", ref, ErrContainerUnknown)
	}
	if id == "" || strings.Contains(id, "/") || id == "." || id == ".." {
		return "", fmt.Errorf("directory of %q: %w", ref, errdefs.ErrInvalidArgument)
	}
	dir := filepath.Join(base, id, "userdata")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("directory of %s: %w", id, withClass(err, errdefs.ErrUnavailable))
	}
	return dir, nil
}
