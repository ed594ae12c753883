// Package naive is the differ for drivers with no native diff (vfs, btrfs, zfs, and overlay's
// fallback): it computes a layer's changes by comparing its full contents with its parent's,
// both made available as directories, using package archive.
//
// Every method makes the layers it needs available with LayerDirs.LayerDir and releases each
// exactly once, on every path: Changes, DiffSize and ApplyDiff before they return, Diff when the
// returned stream ends, fails or is closed.
package naive

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
)

// LayerDirs gives the naive differ access to layer contents.
type LayerDirs interface {
	// LayerDir makes layer id's full contents available as a directory and returns it, with
	// release, which undoes exactly what LayerDir did (it must not unmount a layer that was
	// mounted before the call). The differ calls release exactly once.
	LayerDir(ctx context.Context, id string) (dir string, release func() error, err error)
}

// New returns a pluginapi.Differ over dirs. opts are used by ApplyDiff (the driver's whiteout
// format, chown and force-mask settings).
func New(dirs LayerDirs, opts archive.ApplyOptions) pluginapi.Differ {
	return &differ{dirs: dirs, opts: opts}
}

type differ struct {
	dirs LayerDirs
	opts archive.ApplyOptions
}

// layerPair holds the directories of a layer and of the layer it is compared with.
type layerPair struct {
	dir, parentDir string
	releases       []func() error
}

// open makes id and parent ("" for none) available. On error nothing stays acquired.
func (d *differ) open(ctx context.Context, id, parent string) (*layerPair, error) {
	p := &layerPair{}
	dir, rel, err := d.dirs.LayerDir(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	p.dir, p.releases = dir, append(p.releases, rel)
	if parent != "" {
		pdir, prel, err := d.dirs.LayerDir(ctx, parent)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("layer %s: %w", parent, err), p.release())
		}
		p.parentDir, p.releases = pdir, append(p.releases, prel)
	}
	return p, nil
}

// release undoes open, in reverse order, joining the errors.
func (p *layerPair) release() error {
	var errs []error
	for i := len(p.releases) - 1; i >= 0; i-- {
		if err := p.releases[i](); err != nil {
			errs = append(errs, fmt.Errorf("release layer directory: %w", err))
		}
	}
	p.releases = nil
	return errors.Join(errs...)
}

func (d *differ) Changes(ctx context.Context, id, parent string) ([]archive.Change, error) {
	p, err := d.open(ctx, id, parent)
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", id, err)
	}
	changes, err := archive.Changes(ctx, p.dir, p.parentDir)
	if err = errors.Join(err, p.release()); err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", id, err)
	}
	return changes, nil
}

func (d *differ) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	p, err := d.open(ctx, id, parent)
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", id, err)
	}
	var size int64
	changes, err := archive.Changes(ctx, p.dir, p.parentDir)
	if err == nil {
		size, err = archive.ChangesSize(p.dir, changes)
	}
	if err = errors.Join(err, p.release()); err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", id, err)
	}
	return size, nil
}

func (d *differ) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	p, err := d.open(ctx, id, "")
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	size, err := archive.Apply(ctx, p.dir, diff, d.opts)
	if err = errors.Join(err, p.release()); err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	return size, nil
}

// Diff computes the change list before returning; the export runs when the stream is first read
// or copied (archive.NewStream: WriteTo exports straight into the destination). Both layers stay
// available until the stream ends, fails or is closed; Close waits for the release.
// Canceling ctx after Diff returns does not stop the stream; Close does.
func (d *differ) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	p, err := d.open(ctx, id, parent)
	if err != nil {
		return nil, fmt.Errorf("diff of layer %s: %w", id, err)
	}
	changes, err := archive.Changes(ctx, p.dir, p.parentDir)
	if err != nil {
		return nil, fmt.Errorf("diff of layer %s: %w", id, errors.Join(err, p.release()))
	}
	// The stream outlives the call (over gRPC the call's context ends when Diff returns), so
	// the export is stopped by Close, not by ctx.
	streamCtx := context.WithoutCancel(ctx)
	return archive.NewStream(func(w io.Writer) error {
		if err := archive.ExportChanges(streamCtx, p.dir, changes, w); err != nil {
			return fmt.Errorf("diff of layer %s: %w", id, err)
		}
		return nil
	}, func() error {
		if err := p.release(); err != nil {
			return fmt.Errorf("diff of layer %s: release: %w", id, err)
		}
		return nil
	}), nil
}
