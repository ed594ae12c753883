package overlaydriver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/naive"
)

// newNaive returns the fallback differ: it compares the layers' mounted trees and applies
// through a read-write mount, where deletions become overlay whiteouts by the kernel's hand.
func newNaive(d *Driver) pluginapi.Differ {
	return naive.New(layerDirs{d}, archive.ApplyOptions{
		WhiteoutFormat:    archive.WhiteoutOCI,
		IgnoreChownErrors: d.cfg.ignoreChownErrors,
		ForceMask:         d.cfg.forceMask,
	})
}

// layerDirs gives the naive differ mounted layers. A layer that is already mounted is used as
// it is and left mounted; otherwise it is mounted read-write for the call and unmounted by
// release. The naive differ's calls run under the driver's read lock but not under the layer
// lock (a Diff stream outlives the call); LayerDir takes the layer lock for the mount and for
// the unmount.
type layerDirs struct{ d *Driver }

func (l layerDirs) LayerDir(ctx context.Context, id string) (string, func() error, error) {
	d := l.d
	if err := checkID("layer directory", id); err != nil {
		return "", nil, err
	}
	unlock := d.layers.lock(id)
	defer unlock()
	merged := filepath.Join(d.dir(id), mergedDirName)
	m, err := mountAt(merged)
	if err != nil {
		return "", nil, err
	}
	if isOverlayMount(m) {
		return merged, func() error { return nil }, nil
	}
	p, err := d.get(id, pluginapi.MountOpts{})
	if err != nil {
		return "", nil, err
	}
	var once sync.Once
	return p, func() error {
		var err error
		once.Do(func() {
			unlock := d.layers.lock(id)
			defer unlock()
			err = d.put(id)
		})
		return err
	}, nil
}

// useNative reports whether id's own upper directory is the diff against parent: the kernel is
// trusted for native diffs and parent is id's real parent. Callers hold id's lock.
func (d *Driver) useNative(id, parent string) (bool, error) {
	if !d.feat.nativeDiff {
		return false, nil
	}
	return d.isParent(id, parent)
}

// isParent reports whether parent ("" for none) is layer id's parent: the first entry of id's
// lower file is parent's short link.
func (d *Driver) isParent(id, parent string) (bool, error) {
	lowers, err := d.lowerChain(id)
	if err != nil {
		return false, err
	}
	if parent == "" {
		return len(lowers) == 0, nil
	}
	if len(lowers) == 0 || checkID("diff", parent) != nil {
		return false, nil
	}
	if ok, err := d.layerExists(parent); err != nil || !ok {
		return false, err
	}
	short, err := d.ensureLink(parent)
	if err != nil {
		return false, err
	}
	return lowers[0] == linkDir+"/"+short, nil
}

// beginDiff starts a diff call on id: it checks id (and parent) exist and reports whether the
// native path applies. The returned done releases the locks.
func (d *Driver) beginDiff(op, id, parent string) (done func(), native bool, err error) {
	done, err = d.begin(op, id)
	if err != nil {
		return nil, false, err
	}
	if err = d.mustExist(op, id); err == nil && parent != "" {
		if err = checkID(op, parent); err == nil {
			err = d.mustExist(op+" "+id+": parent", parent)
		}
	}
	if err == nil {
		native, err = d.useNative(id, parent)
	}
	if err != nil {
		done()
		return nil, false, err
	}
	return done, native, nil
}

// Diff streams the changes from parent to id as a layer tar. Natively it tars diff/, turning
// whiteout devices and opaque directories into ".wh." entries; the layer must not be written
// while the stream is read. The stream's lifetime is not bound to ctx beyond this call (the
// call's context ends when it returns); closing the stream stops it.
func (d *Driver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	done, native, err := d.beginDiff("diff of layer", id, parent)
	if err != nil {
		return nil, err
	}
	if !native {
		done()
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.naive.Diff(ctx, id, parent)
	}
	defer done()
	upper := filepath.Join(d.dir(id), "diff")
	// The stream outlives the call (over gRPC the call's context ends when Diff returns); Close
	// stops it. WriteTo (the plugin server's path) tars straight into the destination.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return archive.NewStream(func(w io.Writer) error {
		if err := archive.Tar(sctx, upper, w, archive.TarOptions{WhiteoutFormat: archive.WhiteoutOverlay}); err != nil {
			return fmt.Errorf("diff of layer %s: %w", id, err)
		}
		return nil
	}, func() error { cancel(); return nil }), nil
}

// ApplyDiff extracts diff into layer id. When parent is id's real parent and the kernel's
// overlay is used, the tar goes straight into diff/ with overlay whiteouts (correct whether or
// not native diffs are trusted: this is how the upper directory represents deletions);
// otherwise it goes through a mount, and the kernel or the mount program records deletions in
// its own format. The layer must not be mounted by anyone else meanwhile.
func (d *Driver) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	done, err := d.begin("apply diff to layer", id)
	if err != nil {
		return 0, err
	}
	if err := d.mustExist("apply diff to layer", id); err != nil {
		done()
		return 0, err
	}
	isParent, err := d.isParent(id, parent)
	if err != nil {
		done()
		return 0, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	if !isParent || d.cfg.mountProgram != "" {
		done()
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.naive.ApplyDiff(ctx, id, parent, diff)
	}
	defer done()
	size, err := archive.Apply(ctx, filepath.Join(d.dir(id), "diff"), diff, archive.ApplyOptions{
		WhiteoutFormat:    archive.WhiteoutOverlay,
		IgnoreChownErrors: d.cfg.ignoreChownErrors,
		ForceMask:         d.cfg.forceMask,
	})
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	return size, nil
}

// Changes lists the paths that differ between parent and id, natively from diff/ (see
// upperChanges) when parent is id's real parent.
func (d *Driver) Changes(ctx context.Context, id, parent string) ([]archive.Change, error) {
	done, native, err := d.beginDiff("changes of layer", id, parent)
	if err != nil {
		return nil, err
	}
	if !native {
		done()
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.naive.Changes(ctx, id, parent)
	}
	defer done()
	lowers, err := d.resolvedLowers(id)
	if err == nil {
		lowers, err = d.absLowers(lowers)
	}
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", id, err)
	}
	changes, err := upperChanges(ctx, filepath.Join(d.dir(id), "diff"), lowers)
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", id, err)
	}
	return changes, nil
}

// DiffSize returns the bytes of regular-file content Diff(id, parent) carries: natively, the
// regular files in diff/, hard links counted once.
func (d *Driver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	done, native, err := d.beginDiff("diff size of layer", id, parent)
	if err != nil {
		return 0, err
	}
	if !native {
		done()
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.naive.DiffSize(ctx, id, parent)
	}
	defer done()
	var size int64
	seen := map[[2]uint64]bool{}
	err = filepath.WalkDir(filepath.Join(d.dir(id), "diff"), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !de.Type().IsRegular() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		size += st.Size
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", id, classify(err))
	}
	return size, nil
}

// classify gives an error from walking a layer a class: a vanished file means the layer changed
// under the walk or was damaged.
func classify(err error) error {
	if errdefs.Class(err) != nil {
		return err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrCorrupt)
	}
	return err
}
