package btrfsdriver

import (
	"context"
	"fmt"
	"io"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/naive"
)

// layerDirs gives the naive differ the subvolumes of btrfs layers. Nothing is mounted, so
// release does nothing.
type layerDirs struct{ st *state }

func (l layerDirs) LayerDir(ctx context.Context, id string) (string, func() error, error) {
	dir, err := l.st.lookup(id)
	if err != nil {
		return "", nil, err
	}
	return dir, func() error { return nil }, nil
}

// newDiffer returns the naive differ over subvolumes. Deletions are applied as OCI whiteouts
// remove them: a btrfs layer is a full tree.
func newDiffer(st *state) pluginapi.Differ {
	return naive.New(layerDirs{st}, archive.ApplyOptions{WhiteoutFormat: archive.WhiteoutOCI})
}

// Diff returns the tar of the changes from parent to id (see pluginapi.Differ).
func (d *Driver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("diff layer %s: %w", id, err)
	}
	return st.differ.Diff(ctx, id, parent)
}

// ApplyDiff extracts diff into layer id's subvolume (see pluginapi.Differ).
func (d *Driver) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	st, err := d.state()
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	return st.differ.ApplyDiff(ctx, id, parent, diff)
}

// Changes lists the paths that differ between parent and id (see pluginapi.Differ).
func (d *Driver) Changes(ctx context.Context, id, parent string) ([]archive.Change, error) {
	st, err := d.state()
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", id, err)
	}
	return st.differ.Changes(ctx, id, parent)
}

// DiffSize returns the bytes of regular-file content Diff would carry (see pluginapi.Differ).
func (d *Driver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	st, err := d.state()
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", id, err)
	}
	return st.differ.DiffSize(ctx, id, parent)
}
