package core

import (
	"errors"

	"github.com/pluggable-storage/storage/errdefs"
)

// Domain sentinels. Each wraps one errdefs class, so callers may test either the sentinel or the
// class with errors.Is. Public methods never return these bare: they are wrapped with the
// operation and the ID or reference involved. The texts are those of the established tool,
// which scripts grep for.
var (
	ErrLayerUnknown     = errdefs.Sentinel(errdefs.ErrNotFound, "layer not known")
	ErrImageUnknown     = errdefs.Sentinel(errdefs.ErrNotFound, "image not known")
	ErrContainerUnknown = errdefs.Sentinel(errdefs.ErrNotFound, "container not known")
	ErrNotALayer        = errdefs.Sentinel(errdefs.ErrNotFound, "not a layer")
	ErrNotAnImage       = errdefs.Sentinel(errdefs.ErrNotFound, "not an image")
	ErrNotAContainer    = errdefs.Sentinel(errdefs.ErrNotFound, "not a container")
	ErrNotFoundAnywhere = errdefs.Sentinel(errdefs.ErrNotFound, "does not exist")
	ErrLayerNotMounted  = errdefs.Sentinel(errdefs.ErrNotFound, "layer is not mounted")
	ErrBigDataUnknown   = errdefs.Sentinel(errdefs.ErrNotFound, "data item not known")
	ErrSizeUnknown      = errdefs.Sentinel(errdefs.ErrNotFound, "size is not known")
	ErrDigestUnknown    = errdefs.Sentinel(errdefs.ErrNotFound, "could not compute digest of item")

	ErrDuplicateID   = errdefs.Sentinel(errdefs.ErrAlreadyExists, "that ID is already in use")
	ErrDuplicateName = errdefs.Sentinel(errdefs.ErrAlreadyExists, "that name is already in use")

	ErrLayerHasChildren     = errdefs.Sentinel(errdefs.ErrInUse, "layer has children")
	ErrLayerUsedByImage     = errdefs.Sentinel(errdefs.ErrInUse, "layer is in use by an image")
	ErrLayerUsedByContainer = errdefs.Sentinel(errdefs.ErrInUse, "layer is in use by a container")
	ErrImageUsedByContainer = errdefs.Sentinel(errdefs.ErrInUse, "image is in use by a container")
	ErrLayerMounted         = errdefs.Sentinel(errdefs.ErrInUse, "a layer is mounted")
	ErrParentIsContainer    = errdefs.Sentinel(errdefs.ErrInvalidArgument, "would-be parent layer is a container")
	ErrStoreIsReadOnly      = errdefs.Sentinel(errdefs.ErrNotSupported, "called a write method on a read-only store")
	ErrInvalidBigDataName   = errdefs.Sentinel(errdefs.ErrInvalidArgument, "not a valid name for a big data item")
	ErrIDMapsNotSupported   = errdefs.Sentinel(errdefs.ErrNotSupported, "ID-mapped layers are not supported yet")
	ErrDedupNotSupported    = errdefs.Sentinel(errdefs.ErrNotSupported, "dedup is not supported yet")
	ErrNoDriver             = errdefs.Sentinel(errdefs.ErrNotSupported, "no usable storage driver found")
)

// classed is an error whose text is err's, that also wraps an errdefs class. It gives errors
// from the tar reader or the JSON decoder ("invalid tar header", "unexpected EOF") a class
// without changing the text scripts compare.
type classed struct {
	err   error
	class error
}

func (c *classed) Error() string   { return c.err.Error() }
func (c *classed) Unwrap() []error { return []error{c.err, c.class} }

// withClass returns err unchanged if it already wraps a class, else err tagged with class.
func withClass(err error, class error) error {
	if err == nil || errdefs.Class(err) != nil {
		return err
	}
	return &classed{err: err, class: class}
}

// isNotFound reports whether err is of the not-found class.
func isNotFound(err error) bool { return errors.Is(err, errdefs.ErrNotFound) }
