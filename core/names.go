package core

import (
	"context"
	"fmt"
	"slices"
)

// Kind is the kind of item a reference resolves to.
type Kind int

const (
	KindLayer Kind = iota
	KindImage
	KindContainer
)

func (k Kind) String() string {
	switch k {
	case KindLayer:
		return "layer"
	case KindImage:
		return "image"
	case KindContainer:
		return "container"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// item is a resolved reference, whichever its kind.
type item struct {
	kind Kind
	l    *Layer
	img  *Image
	c    *Container
}

func (it item) id() string {
	switch it.kind {
	case KindLayer:
		return it.l.ID
	case KindImage:
		return it.img.ID
	}
	return it.c.ID
}

// resolve finds ref among layers, then images, then containers (ID, name, or unique prefix
// within each kind). Lock held.
func (s *Store) resolve(ref string, kinds ...Kind) (item, bool) {
	if len(kinds) == 0 {
		kinds = []Kind{KindLayer, KindImage, KindContainer}
	}
	for _, k := range []Kind{KindLayer, KindImage, KindContainer} {
		if !slices.Contains(kinds, k) {
			continue
		}
		switch k {
		case KindLayer:
			if l, ok := s.getLayer(ref); ok {
				return item{kind: k, l: l}, true
			}
		case KindImage:
			if img, ok := s.getImage(ref); ok {
				return item{kind: k, img: img}, true
			}
		case KindContainer:
			if c, ok := s.containers.t.get(ref); ok {
				return item{kind: k, c: c}, true
			}
		}
	}
	return item{}, false
}

// Lookup resolves ref to a kind and a full ID, trying layers, then images, then containers.
// It does not start the driver.
func (s *Store) Lookup(ref string) (Kind, string, error) {
	end, err := s.begin(false)
	if err != nil {
		return 0, "", fmt.Errorf("lookup %s: %w", ref, err)
	}
	defer end()
	it, ok := s.resolve(ref)
	if !ok {
		return 0, "", fmt.Errorf("lookup %q: %w", ref, ErrNotFoundAnywhere)
	}
	return it.kind, it.id(), nil
}

// Exists reports whether ref names an item of one of kinds (any kind if none given).
func (s *Store) Exists(ref string, kinds ...Kind) bool {
	end, err := s.begin(false)
	if err != nil {
		return false
	}
	defer end()
	_, ok := s.resolve(ref, kinds...)
	return ok
}

// Metadata returns the metadata string of the item ref names.
func (s *Store) Metadata(ref string) (string, error) {
	end, err := s.begin(false)
	if err != nil {
		return "", fmt.Errorf("metadata of %s: %w", ref, err)
	}
	defer end()
	it, ok := s.resolve(ref)
	if !ok {
		return "", fmt.Errorf("metadata of %q: %w", ref, ErrNotFoundAnywhere)
	}
	switch it.kind {
	case KindLayer:
		return it.l.Metadata, nil
	case KindImage:
		return it.img.Metadata, nil
	}
	return it.c.Metadata, nil
}

// SetMetadata replaces the metadata string of the item ref names.
func (s *Store) SetMetadata(ref, metadata string) error {
	return s.update("set metadata of", ref, false, func(it item) error {
		switch it.kind {
		case KindLayer:
			it.l.Metadata = metadata
		case KindImage:
			it.img.Metadata = metadata
		default:
			it.c.Metadata = metadata
		}
		return nil
	})
}

// update resolves ref under the write lock, applies change, and saves that kind's file. Items
// of read-only image stores refuse changes, except names of images (namesOp), for which the
// image is first pulled up into this store.
func (s *Store) update(op, ref string, namesOp bool, change func(item) error) error {
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, ref, err)
	}
	defer end()
	it, ok := s.resolve(ref)
	if !ok {
		return fmt.Errorf("%s %q: %w", op, ref, ErrNotFoundAnywhere)
	}
	switch {
	case it.kind == KindLayer && it.l.store != "":
		return fmt.Errorf("%s layer %s in %s: %w", op, it.l.ID, it.l.store, ErrStoreIsReadOnly)
	case it.kind == KindImage && it.img.store != "":
		if !namesOp {
			return fmt.Errorf("%s image %s in %s: %w", op, it.img.ID, it.img.store, ErrStoreIsReadOnly)
		}
		if it.img, err = s.pullUpImage(it.img); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := change(it); err != nil {
		return fmt.Errorf("%s %s %s: %w", op, it.kind, it.id(), err)
	}
	switch it.kind {
	case KindLayer:
		err = s.layers.save()
	case KindImage:
		s.imagesChanged()
		err = s.images.save()
	default:
		err = s.containers.save()
	}
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", op, it.kind, it.id(), err)
	}
	return nil
}

// Names returns the names of the item ref names.
func (s *Store) Names(ref string) ([]string, error) {
	end, err := s.begin(false)
	if err != nil {
		return nil, fmt.Errorf("names of %s: %w", ref, err)
	}
	defer end()
	it, ok := s.resolve(ref)
	if !ok {
		return nil, fmt.Errorf("names of %q: %w", ref, ErrNotFoundAnywhere)
	}
	switch it.kind {
	case KindLayer:
		return cloneStrings(it.l.Names), nil
	case KindImage:
		return cloneStrings(it.img.Names), nil
	}
	return cloneStrings(it.c.Names), nil
}

// setNames gives the item exactly names, stealing each from any other item of the same kind.
// For images, each of given (the names of the operation) is put in front of the names
// history in turn, as the established tool does.
func (s *Store) setNames(it item, names, given []string) {
	names = dedup(names)
	switch it.kind {
	case KindLayer:
		s.layers.t.setNames(it.l, names)
	case KindImage:
		s.images.t.setNames(it.img, names)
		addNamesToHistory(it.img, dedup(given))
	default:
		s.containers.t.setNames(it.c, names)
	}
}

func currentNames(it item) []string {
	switch it.kind {
	case KindLayer:
		return it.l.Names
	case KindImage:
		return it.img.Names
	}
	return it.c.Names
}

// AddNames puts names in front of the item's names (deduplicated), taking each from whichever
// item of the same kind held it.
func (s *Store) AddNames(ref string, names []string) error {
	return s.update("add names to", ref, true, func(it item) error {
		s.setNames(it, append(cloneStrings(names), currentNames(it)...), names)
		return nil
	})
}

// RemoveNames removes names from the item.
func (s *Store) RemoveNames(ref string, names []string) error {
	return s.update("remove names from", ref, true, func(it item) error {
		var keep []string
		for _, n := range currentNames(it) {
			if !slices.Contains(names, n) {
				keep = append(keep, n)
			}
		}
		s.setNames(it, keep, nil)
		return nil
	})
}

// SetNames replaces the item's names, taking each from whichever item of the same kind held it.
func (s *Store) SetNames(ref string, names []string) error {
	return s.update("set names of", ref, true, func(it item) error {
		s.setNames(it, names, names)
		return nil
	})
}

// Delete removes the item ref names with none of the dependency checks of DeleteLayer,
// DeleteImage and DeleteContainer: a container (its layer and userdata directories), an image
// (its record and directories only), or a layer.
func (s *Store) Delete(ctx context.Context, ref string) error {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	defer end()
	if c, ok := s.containers.t.get(ref); ok {
		return s.deleteContainer(ctx, c, false)
	}
	if img, ok := s.images.t.get(ref); ok {
		return s.removeImage(img)
	}
	if l, ok := s.layers.t.get(ref); ok {
		return s.deleteLayer(ctx, l)
	}
	if it, ok := s.resolve(ref); ok {
		return fmt.Errorf("delete %s %s: %w", it.kind, it.id(), ErrStoreIsReadOnly)
	}
	return fmt.Errorf("delete %q: %w", ref, ErrNotFoundAnywhere)
}
