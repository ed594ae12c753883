package core

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	digest "github.com/opencontainers/go-digest"

	"github.com/pluggable-storage/storage/core/internal/atomicfile"
	"github.com/pluggable-storage/storage/errdefs"
)

// bigDataFileName maps a big-data key to its file name (SPEC-disk §1.1): a key made only of
// [a-z0-9.] is used as is, anything else becomes "=" + base64(key).
func bigDataFileName(key string) string {
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.') {
			return "=" + base64.StdEncoding.EncodeToString([]byte(key))
		}
	}
	if key == "." || key == ".." {
		return "=" + base64.StdEncoding.EncodeToString([]byte(key))
	}
	return key
}

// writeBigData stores one item in dir (created 0700) atomically and synced. The record that
// names the item is saved afterwards, so a crash leaves at worst an unnamed file (which gc
// removes), never a name without data.
func writeBigData(dir, key string, data []byte) error {
	if key == "" {
		return fmt.Errorf("key %q: %w", key, ErrInvalidBigDataName)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return withClass(err, errdefs.ErrUnavailable)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, bigDataFileName(key)), data, 0o600, false); err != nil {
		return withClass(err, errdefs.ErrUnavailable)
	}
	return nil
}

func readBigData(dir, key string, names []string) ([]byte, error) {
	if !slices.Contains(names, key) {
		return nil, fmt.Errorf("data item %q: %w", key, ErrBigDataUnknown)
	}
	data, err := os.ReadFile(filepath.Join(dir, bigDataFileName(key)))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("data item %q: %w", key, withClass(err, errdefs.ErrNotFound))
		}
		return nil, fmt.Errorf("data item %q: %w", key, withClass(err, errdefs.ErrUnavailable))
	}
	return data, nil
}

func addKey(names []string, key string) []string {
	if slices.Contains(names, key) {
		return names
	}
	return append(names, key)
}

// ListLayerBigData lists a layer's big-data keys.
func (s *Store) ListLayerBigData(ref string) ([]string, error) {
	l, err := s.Layer(ref)
	if err != nil {
		return nil, fmt.Errorf("list layer data: %w", err)
	}
	return l.BigDataNames, nil
}

// LayerBigData returns a reader of one of a layer's big-data items.
func (s *Store) LayerBigData(ref, key string) (io.ReadCloser, error) {
	end, err := s.beginRead(kLayers)
	if err != nil {
		return nil, fmt.Errorf("layer data %s: %w", ref, err)
	}
	defer end()
	l, ok := s.getLayer(ref)
	if !ok {
		return nil, fmt.Errorf("layer data %q: %w", ref, ErrLayerUnknown)
	}
	data, err := readBigData(s.layerDataDir(l), key, l.BigDataNames)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.ID, err)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// SetLayerBigData stores a big-data item of a layer. Layers record no size or digest for it.
func (s *Store) SetLayerBigData(ref, key string, data io.Reader) error {
	buf, err := io.ReadAll(data)
	if err != nil {
		return fmt.Errorf("set layer data %s: %w", ref, withClass(err, errdefs.ErrInvalidArgument))
	}
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("set layer data %s: %w", ref, err)
	}
	defer end()
	l, err := s.rwLayer(ref)
	if err != nil {
		return fmt.Errorf("set layer data: %w", err)
	}
	if err := writeBigData(s.layerDataDir(l), key, buf); err != nil {
		return fmt.Errorf("set layer data %s: %w", l.ID, err)
	}
	if !slices.Contains(l.BigDataNames, key) {
		l.BigDataNames = append(l.BigDataNames, key)
		if err := s.layers.save(); err != nil {
			return fmt.Errorf("set layer data %s: %w", l.ID, err)
		}
	}
	return nil
}

// ListImageBigData lists an image's big-data keys.
func (s *Store) ListImageBigData(ref string) ([]string, error) {
	img, err := s.Image(ref)
	if err != nil {
		return nil, fmt.Errorf("list image data: %w", err)
	}
	return img.BigDataNames, nil
}

// ImageBigData returns one of an image's big-data items.
func (s *Store) ImageBigData(ref, key string) ([]byte, error) {
	end, err := s.beginRead(kImages)
	if err != nil {
		return nil, fmt.Errorf("image data %s: %w", ref, err)
	}
	defer end()
	img, ok := s.getImage(ref)
	if !ok {
		return nil, fmt.Errorf("image data %q: %w", ref, ErrImageUnknown)
	}
	data, err := readBigData(s.imageDataDir(img), key, img.BigDataNames)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID, err)
	}
	return data, nil
}

// ImageBigDataSize returns the recorded size of an image's big-data item.
func (s *Store) ImageBigDataSize(ref, key string) (int64, error) {
	img, err := s.Image(ref)
	if err != nil {
		return -1, fmt.Errorf("image data size: %w", err)
	}
	n, ok := img.BigDataSizes[key]
	if !ok {
		return -1, fmt.Errorf("image %s: data item %q: %w", img.ID, key, ErrSizeUnknown)
	}
	return n, nil
}

// ImageBigDataDigest returns the recorded digest of an image's big-data item.
func (s *Store) ImageBigDataDigest(ref, key string) (digest.Digest, error) {
	img, err := s.Image(ref)
	if err != nil {
		return "", fmt.Errorf("image data digest: %w", err)
	}
	d, ok := img.BigDataDigests[key]
	if !ok {
		return "", fmt.Errorf("image %s: data item %q: %w", img.ID, key, ErrDigestUnknown)
	}
	return d, nil
}

// SetImageBigData stores a big-data item of an image with its size and digest. For keys that
// start with "manifest" the digest comes from digestManifest (sha256 of the bytes if nil) and
// joins the image's Digests; the image's digest defaults to the first of them.
func (s *Store) SetImageBigData(ref, key string, data []byte, digestManifest func([]byte) (digest.Digest, error)) error {
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("set image data %s: %w", ref, err)
	}
	defer end()
	img, err := s.rwImage(ref)
	if err != nil {
		return fmt.Errorf("set image data: %w", err)
	}
	d := digest.Canonical.FromBytes(data)
	if isManifestKey(key) && digestManifest != nil {
		if d, err = digestManifest(data); err != nil {
			return fmt.Errorf("set image data %s: digest manifest %q: %w", img.ID, key, withClass(err, errdefs.ErrInvalidArgument))
		}
	}
	if err := writeBigData(s.imageDataDir(img), key, data); err != nil {
		return fmt.Errorf("set image data %s: %w", img.ID, err)
	}
	img.BigDataNames = addKey(img.BigDataNames, key)
	if img.BigDataSizes == nil {
		img.BigDataSizes = map[string]int64{}
	}
	if img.BigDataDigests == nil {
		img.BigDataDigests = map[string]digest.Digest{}
	}
	img.BigDataSizes[key] = int64(len(data))
	img.BigDataDigests[key] = d
	recomputeDigests(img)
	s.imagesChanged()
	if err := s.images.save(); err != nil {
		return fmt.Errorf("set image data %s: %w", img.ID, err)
	}
	return nil
}

// ListContainerBigData lists a container's big-data keys.
func (s *Store) ListContainerBigData(ref string) ([]string, error) {
	c, err := s.Container(ref)
	if err != nil {
		return nil, fmt.Errorf("list container data: %w", err)
	}
	return c.BigDataNames, nil
}

// ContainerBigData returns one of a container's big-data items.
func (s *Store) ContainerBigData(ref, key string) ([]byte, error) {
	end, err := s.beginRead(kContainers)
	if err != nil {
		return nil, fmt.Errorf("container data %s: %w", ref, err)
	}
	defer end()
	c, ok := s.containers.t.get(ref)
	if !ok {
		return nil, fmt.Errorf("container data %q: %w", ref, ErrContainerUnknown)
	}
	data, err := readBigData(filepath.Join(s.dir("containers"), c.ID), key, c.BigDataNames)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}
	return data, nil
}

// ContainerBigDataSize returns the recorded size of a container's big-data item.
func (s *Store) ContainerBigDataSize(ref, key string) (int64, error) {
	c, err := s.Container(ref)
	if err != nil {
		return -1, fmt.Errorf("container data size: %w", err)
	}
	n, ok := c.BigDataSizes[key]
	if !ok {
		return -1, fmt.Errorf("container %s: data item %q: %w", c.ID, key, ErrSizeUnknown)
	}
	return n, nil
}

// ContainerBigDataDigest returns the recorded digest of a container's big-data item.
func (s *Store) ContainerBigDataDigest(ref, key string) (digest.Digest, error) {
	c, err := s.Container(ref)
	if err != nil {
		return "", fmt.Errorf("container data digest: %w", err)
	}
	d, ok := c.BigDataDigests[key]
	if !ok {
		return "", fmt.Errorf("container %s: data item %q: %w", c.ID, key, ErrDigestUnknown)
	}
	return d, nil
}

// SetContainerBigData stores a big-data item of a container with its size and sha256 digest.
func (s *Store) SetContainerBigData(ref, key string, data []byte) error {
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("set container data %s: %w", ref, err)
	}
	defer end()
	c, ok := s.containers.t.get(ref)
	if !ok {
		return fmt.Errorf("set container data %q: %w", ref, ErrContainerUnknown)
	}
	if err := writeBigData(filepath.Join(s.dir("containers"), c.ID), key, data); err != nil {
		return fmt.Errorf("set container data %s: %w", c.ID, err)
	}
	c.BigDataNames = addKey(c.BigDataNames, key)
	if c.BigDataSizes == nil {
		c.BigDataSizes = map[string]int64{}
	}
	if c.BigDataDigests == nil {
		c.BigDataDigests = map[string]digest.Digest{}
	}
	c.BigDataSizes[key] = int64(len(data))
	c.BigDataDigests[key] = digest.Canonical.FromBytes(data)
	if err := s.containers.save(); err != nil {
		return fmt.Errorf("set container data %s: %w", c.ID, err)
	}
	return nil
}
