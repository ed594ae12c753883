package overlaydriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// dir is layer id's directory.
func (d *Driver) dir(id string) string { return filepath.Join(d.home, id) }

// reservedName reports whether a home entry is not a layer.
func reservedName(name string) bool {
	return name == linkDir || name == tempDirs || name == stagingDir || strings.HasPrefix(name, ".")
}

// checkID rejects IDs that are not a plain, non-reserved directory name.
func checkID(op, id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00:,") || id == ".." || reservedName(id) {
		return fmt.Errorf("%s: invalid layer ID %q: %w", op, id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// begin takes the driver's read lock and id's lock after checking Init ran and id is valid.
func (d *Driver) begin(op, id string) (func(), error) {
	d.mu.RLock()
	if !d.initialized {
		d.mu.RUnlock()
		return nil, fmt.Errorf("%s %s: %w", op, id, ErrNotInitialized)
	}
	if err := checkID(op, id); err != nil {
		d.mu.RUnlock()
		return nil, err
	}
	unlock := d.layers.lock(id)
	return func() { unlock(); d.mu.RUnlock() }, nil
}

// layerExists reports whether id is a layer: a directory with a diff/ in it.
func (d *Driver) layerExists(id string) (bool, error) {
	fi, err := os.Stat(filepath.Join(d.dir(id), "diff"))
	if err == nil {
		return fi.IsDir(), nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func (d *Driver) mustExist(op, id string) error {
	ok, err := d.layerExists(id)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if !ok {
		return fmt.Errorf("%s %s: layer not known: %w", op, id, errdefs.ErrNotFound)
	}
	return nil
}

// Create makes layer id on top of parent. The layer directory is built in a hidden staging
// directory and renamed into place, then its l/ link is made; a crash before the rename leaves
// only the staging directory, which Init deletes. Read-only and read-write layers are alike.
func (d *Driver) Create(ctx context.Context, id, parent string, opts pluginapi.CreateOpts) (retErr error) {
	done, err := d.begin("create layer", id)
	if err != nil {
		return err
	}
	defer done()
	for k, v := range opts.StorageOpt {
		switch strings.ToLower(k) {
		case "size", "inodes":
			if v != "" {
				return fmt.Errorf("create layer %s: storage option %s: project quotas are not implemented: %w", id, k, errdefs.ErrNotSupported)
			}
		default:
			return fmt.Errorf("create layer %s: unknown storage option %q: %w", id, k, errdefs.ErrInvalidArgument)
		}
	}
	if ok, err := d.layerExists(id); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	} else if ok {
		return fmt.Errorf("create layer %s: %w", id, errdefs.ErrAlreadyExists)
	}

	var lower string
	var diffMode uint32 = 0o555
	var uid, gid = 0, 0
	if parent != "" {
		if err := checkID("create layer", parent); err != nil {
			return err
		}
		// The parent's lock is not taken: the store does not remove a layer while a child is
		// being created on it, and the parent's files read here are written once at its Create.
		if err := d.mustExist("create layer "+id+": parent", parent); err != nil {
			return err
		}
		parentShort, err := d.ensureLink(parent)
		if err != nil {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
		lowers, err := d.lowerChain(parent)
		if err != nil {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
		lowers = append([]string{linkDir + "/" + parentShort}, lowers...)
		if len(lowers) > maxLowers {
			return fmt.Errorf("create layer %s: max depth exceeded: it would have %d lower layers, the limit is %d: %w",
				id, len(lowers), maxLowers, errdefs.ErrInvalidArgument)
		}
		lower = strings.Join(lowers, ":")
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(d.dir(parent), "diff"), &st); err != nil {
			return fmt.Errorf("create layer %s: stat parent %s: %w", id, parent, err)
		}
		diffMode, uid, gid = st.Mode&0o7777, int(st.Uid), int(st.Gid)
	}

	stage, err := os.MkdirTemp(d.home, scratchName(stagingPrefix, id))
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(stage)
		}
	}()
	if err := os.Chmod(stage, 0o700); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	dirs := []string{"diff", "work", mergedDirName}
	if parent == "" {
		dirs = append(dirs, "empty")
	}
	for _, sub := range dirs {
		if err := os.Mkdir(filepath.Join(stage, sub), 0o700); err != nil {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
	}
	diff := filepath.Join(stage, "diff")
	if err := os.Lchown(diff, uid, gid); err != nil {
		return fmt.Errorf("create layer %s: chown diff: %w", id, err)
	}
	if err := unix.Chmod(diff, diffMode); err != nil {
		return fmt.Errorf("create layer %s: chmod diff: %w", id, err)
	}
	short := newShortID()
	if err := writeFileSync(filepath.Join(stage, linkFile), []byte(short), 0o644); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if lower != "" {
		if err := writeFileSync(filepath.Join(stage, lowerFile), []byte(lower), 0o666); err != nil {
			return fmt.Errorf("create layer %s: %w", id, err)
		}
	}
	if err := syncDir(stage); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := os.Rename(stage, d.dir(id)); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("create layer %s: %w", id, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := os.Symlink(linkTarget(id), filepath.Join(d.home, linkDir, short)); err != nil {
		_ = os.RemoveAll(d.dir(id))
		return fmt.Errorf("create layer %s: short link: %w", id, err)
	}
	if err := syncDir(d.home); err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Remove unmounts layer id and deletes it: the directory is renamed into tempdirs/ first (so the
// ID is gone at once and a crash leaves only garbage Init deletes), then the l/ link and the
// renamed directory are removed. Removing an unknown layer succeeds.
func (d *Driver) Remove(ctx context.Context, id string) error {
	done, err := d.begin("remove layer", id)
	if err != nil {
		return err
	}
	defer done()
	dir := d.dir(id)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := unmountAll(filepath.Join(dir, mergedDirName)); err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	short, _ := os.ReadFile(filepath.Join(dir, linkFile))
	trash, err := os.MkdirTemp(filepath.Join(d.home, tempDirs), scratchName("", id))
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	gone := filepath.Join(trash, "layer")
	if err := os.Rename(dir, gone); err != nil {
		_ = os.Remove(trash)
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	if s := strings.TrimSpace(string(short)); s != "" && !strings.ContainsRune(s, '/') {
		lp := filepath.Join(d.home, linkDir, s)
		if t, err := os.Readlink(lp); err == nil && t == linkTarget(id) {
			_ = os.Remove(lp)
		}
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove layer %s: delete files: %w", id, err)
	}
	return nil
}

// Exists reports whether layer id exists.
func (d *Driver) Exists(ctx context.Context, id string) (bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.initialized {
		return false, fmt.Errorf("layer %s exists: %w", id, ErrNotInitialized)
	}
	if checkID("exists", id) != nil {
		return false, nil
	}
	ok, err := d.layerExists(id)
	if err != nil {
		return false, fmt.Errorf("layer %s exists: %w", id, err)
	}
	return ok, nil
}

// ListLayers lists every layer directory in the home.
func (d *Driver) ListLayers(ctx context.Context) ([]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.initialized {
		return nil, fmt.Errorf("list layers: %w", ErrNotInitialized)
	}
	dirs, err := driverkit.ListDirs(d.home)
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	var ids []string
	for _, name := range dirs {
		if reservedName(name) {
			continue
		}
		if ok, _ := d.layerExists(name); ok {
			ids = append(ids, name)
		}
	}
	return ids, nil
}

// Metadata returns the overlay directories of layer id: MergedDir, UpperDir, WorkDir and, for a
// layer with a parent, LowerDir (the lower diff directories, nearest first, joined by ":").
func (d *Driver) Metadata(ctx context.Context, id string) (map[string]string, error) {
	done, err := d.begin("metadata of layer", id)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := d.mustExist("metadata of layer", id); err != nil {
		return nil, err
	}
	dir := d.dir(id)
	m := map[string]string{
		"MergedDir": filepath.Join(dir, mergedDirName),
		"UpperDir":  filepath.Join(dir, "diff"),
		"WorkDir":   filepath.Join(dir, "work"),
	}
	lowers, err := d.resolvedLowers(id)
	if err != nil {
		return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
	}
	if len(lowers) > 0 {
		abs, err := d.absLowers(lowers)
		if err != nil {
			return nil, fmt.Errorf("metadata of layer %s: %w", id, err)
		}
		m["LowerDir"] = strings.Join(abs, ":")
	}
	return m, nil
}
