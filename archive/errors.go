package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/pluggable-storage/storage/errdefs"
	"golang.org/x/sys/unix"
)

// classify makes err carry an errdefs class (see the package doc). Errors that already carry
// one, and context errors, are returned unchanged.
func classify(err error) error {
	if err == nil || errdefs.Class(err) != nil ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.EPERM, unix.EACCES, unix.EROFS, unix.EOPNOTSUPP, unix.ENOSYS:
			return fmt.Errorf("%w: %w", errdefs.ErrNotSupported, err)
		case unix.ENOSPC, unix.EDQUOT, unix.ENOMEM, unix.EMFILE, unix.ENFILE:
			return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
		case unix.EIO, unix.EUCLEAN:
			return fmt.Errorf("%w: %w", errdefs.ErrCorrupt, err)
		}
	}
	return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
}

// classifyTree is classify for operations on an existing tree (Tar, Changes, ExportChanges),
// where a missing path is ErrNotFound rather than a bad tar.
func classifyTree(err error) error {
	if err != nil && errdefs.Class(err) == nil && errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	return classify(err)
}

// invalid returns an ErrInvalidArgument error with the given text.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, fmt.Sprintf(format, args...))
}
