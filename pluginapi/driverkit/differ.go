package driverkit

import (
	"context"
	"fmt"
	"io"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/naive"
)

// ForwardDiffer returns a pluginapi.Differ for a driver whose differ is made by Init and kept in
// the driver's state: every call gets the state of the moment with state and forwards to the
// Differ that differ picks out of it. When state fails (the driver is not initialised) the call
// fails with that error, wrapped with the operation and the layer ID ("diff layer <id>: ...",
// "apply diff to layer <id>: ...", "changes of layer <id>: ...", "diff size of layer <id>:
// ..."). state is called once per call and must be safe for concurrent use, so a later Init
// takes effect at the next call.
//
// A driver embeds the result to get its Differ methods:
//
//	type differ = pluginapi.Differ
//	type Driver struct {
//		st atomic.Pointer[state]
//		differ
//	}
//	d.differ = driverkit.ForwardDiffer(d.state, func(st *state) pluginapi.Differ { return st.differ })
func ForwardDiffer[S any](state func() (S, error), differ func(S) pluginapi.Differ) pluginapi.Differ {
	return forwardDiffer(func() (pluginapi.Differ, error) {
		st, err := state()
		if err != nil {
			return nil, err
		}
		return differ(st), nil
	})
}

// forwardDiffer returns the differ to forward a call to, or why there is none.
type forwardDiffer func() (pluginapi.Differ, error)

func (get forwardDiffer) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	d, err := get()
	if err != nil {
		return nil, fmt.Errorf("diff layer %s: %w", id, err)
	}
	return d.Diff(ctx, id, parent)
}

func (get forwardDiffer) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	d, err := get()
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	return d.ApplyDiff(ctx, id, parent, diff)
}

func (get forwardDiffer) Changes(ctx context.Context, id, parent string) ([]archive.Change, error) {
	d, err := get()
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", id, err)
	}
	return d.Changes(ctx, id, parent)
}

func (get forwardDiffer) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	d, err := get()
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", id, err)
	}
	return d.DiffSize(ctx, id, parent)
}

// PlainDirs is a naive.LayerDirs for drivers whose layers are directories that need no mount
// (vfs directories, btrfs subvolumes): LayerDir returns the directory the function finds for the
// layer, and a release that does nothing. The function's error is returned as it is; the naive
// differ adds the layer ID.
type PlainDirs func(id string) (string, error)

var _ naive.LayerDirs = PlainDirs(nil)

// LayerDir returns f(id) and a release that does nothing.
func (f PlainDirs) LayerDir(ctx context.Context, id string) (string, func() error, error) {
	dir, err := f(id)
	if err != nil {
		return "", nil, err
	}
	return dir, func() error { return nil }, nil
}
