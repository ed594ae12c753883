package conformance

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	mathrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
)

const (
	defaultPerms  = os.FileMode(0o555)
	modifiedPerms = os.FileMode(0o711)
)

// randomID returns a new 64-hex-character layer ID, as the store generates them.
func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// randomContent returns size bytes determined by seed.
func randomContent(size int, seed int64) []byte {
	r := mathrand.New(mathrand.NewPCG(uint64(seed), 0x5eed))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// create makes layer id on parent and records it for teardown.
func (h *harness) create(t testing.TB, id, parent string) {
	t.Helper()
	h.createOpts(t, id, parent, pluginapi.CreateOpts{})
}

func (h *harness) createOpts(t testing.TB, id, parent string, opts pluginapi.CreateOpts) {
	t.Helper()
	if err := h.d.Create(t.Context(), id, parent, opts); err != nil {
		t.Fatalf("create layer %s on %q: %v", id, parent, err)
	}
	h.created = append(h.created, id)
}

// withLayer calls fn with the mounted root of layer id, then unmounts it.
func (h *harness) withLayer(t testing.TB, id string, fn func(root string) error) {
	t.Helper()
	root, err := h.d.Get(t.Context(), id, pluginapi.MountOpts{})
	if err != nil {
		t.Fatalf("get layer %s: %v", id, err)
	}
	fnErr := fn(root)
	if err := h.d.Put(t.Context(), id); err != nil {
		t.Fatalf("put layer %s: %v", id, err)
	}
	if fnErr != nil {
		t.Fatalf("layer %s: %v", id, fnErr)
	}
}

func (h *harness) changes(t testing.TB, id, parent string) []archive.Change {
	t.Helper()
	ch, err := h.d.Changes(t.Context(), id, parent)
	if err != nil {
		t.Fatalf("changes of layer %s against %q: %v", id, parent, err)
	}
	return ch
}

// createBase makes a base layer holding "a subdir" (0705|sticky, owner 1:2) and "a file"
// (0222|setuid, owner 0:0), as the established graphtest does.
func (h *harness) createBase(t testing.TB, id string) {
	t.Helper()
	h.create(t, id, "")
	h.withLayer(t, id, func(root string) error {
		sub := filepath.Join(root, "a subdir")
		if err := os.Mkdir(sub, 0o700); err != nil {
			return err
		}
		if err := unix.Chmod(sub, 0o1705); err != nil {
			return err
		}
		if err := os.Lchown(sub, 1, 2); err != nil {
			return err
		}
		file := filepath.Join(root, "a file")
		if err := os.WriteFile(file, []byte("Some data"), 0o600); err != nil {
			return err
		}
		return unix.Chmod(file, 0o4222)
	})
}

// verifyBase checks a layer made by createBase (or a copy): its root has rootPerms and is owned
// by 0:0, and it holds exactly "a subdir" and "a file" with their modes and owners.
func (h *harness) verifyBase(t testing.TB, id string, rootPerms os.FileMode) {
	t.Helper()
	h.withLayer(t, id, func(root string) error {
		return errors.Join(
			checkFileMode(root, rootPerms|os.ModeDir, 0, 0),
			checkFileMode(filepath.Join(root, "a subdir"), 0o705|os.ModeDir|os.ModeSticky, 1, 2),
			checkFileMode(filepath.Join(root, "a file"), 0o222|os.ModeSetuid, 0, 0),
			checkEntries(root, "a file", "a subdir"),
		)
	})
}

// checkFileMode checks p's mode (type and permission bits) and owner, without following symlinks.
func checkFileMode(p string, mode os.FileMode, uid, gid uint32) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode() != mode {
		return fmt.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid {
		return fmt.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
	return nil
}

// checkEntries checks that dir holds exactly the names want (ignoring ext4's lost+found).
func checkEntries(dir string, want ...string) error {
	got, err := readDirNames(dir)
	if err != nil {
		return err
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s holds %q, want %q", dir, got, want)
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "lost+found" {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

func (h *harness) addFile(t testing.TB, id, name string, content []byte) {
	t.Helper()
	h.withLayer(t, id, func(root string) error {
		return os.WriteFile(filepath.Join(root, name), content, 0o755)
	})
}

func (h *harness) checkFile(t testing.TB, id, name string, content []byte) {
	t.Helper()
	h.withLayer(t, id, func(root string) error {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, content) {
			return fmt.Errorf("%s: content %q, want %q", name, trunc(got), trunc(content))
		}
		return nil
	})
}

func trunc(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func (h *harness) checkRemoved(t testing.TB, id, name string) {
	t.Helper()
	h.withLayer(t, id, func(root string) error {
		if _, err := os.Lstat(filepath.Join(root, name)); err == nil {
			return fmt.Errorf("%s still exists", name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// addManyFiles writes count files of 64 bytes (content from seed) in directories of 100.
func (h *harness) addManyFiles(t testing.TB, id string, count int, seed int64) {
	t.Helper()
	h.withLayer(t, id, func(root string) error {
		for i := 0; i < count; i += 100 {
			dir := path.Join(root, fmt.Sprintf("directory-%d", i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for j := 0; i+j < count && j < 100; j++ {
				file := path.Join(dir, fmt.Sprintf("file-%d", i+j))
				if err := os.WriteFile(file, randomContent(64, seed+int64(i+j)), 0o755); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (h *harness) checkManyFiles(t testing.TB, id string, count int, seed int64) {
	t.Helper()
	h.withLayer(t, id, func(root string) error {
		for i := 0; i < count; i += 100 {
			dir := path.Join(root, fmt.Sprintf("directory-%d", i))
			for j := 0; i+j < count && j < 100; j++ {
				file := path.Join(dir, fmt.Sprintf("file-%d", i+j))
				got, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, randomContent(64, seed+int64(i+j))) {
					return fmt.Errorf("%s: content differs from seed %d", file, seed+int64(i+j))
				}
			}
		}
		return nil
	})
}

// changeManyFiles modifies, adds or removes (in turn) count files made by addManyFiles and returns
// the changes it made, as the established graphtest does.
func (h *harness) changeManyFiles(t testing.TB, id string, count int, seed int64) []archive.Change {
	t.Helper()
	var changes []archive.Change
	h.withLayer(t, id, func(root string) error {
		for i := 0; i < count; i += 100 {
			archiveRoot := fmt.Sprintf("/directory-%d", i)
			if err := os.MkdirAll(path.Join(root, archiveRoot), 0o755); err != nil {
				return err
			}
			for j := 0; i+j < count && j < 100; j++ {
				if j == 0 {
					changes = append(changes, archive.Change{Path: archiveRoot, Kind: archive.ChangeModify})
				}
				var change archive.Change
				switch j % 3 {
				case 0: // modify, until the mtime visibly changes
					change = archive.Change{Path: path.Join(archiveRoot, fmt.Sprintf("file-%d", i+j)), Kind: archive.ChangeModify}
					orig, err := os.Stat(path.Join(root, change.Path))
					if err != nil {
						return err
					}
					for {
						if err := os.WriteFile(path.Join(root, change.Path), randomContent(64, seed+int64(i+j)), 0o755); err != nil {
							return err
						}
						upd, err := os.Stat(path.Join(root, change.Path))
						if err != nil {
							return err
						}
						if !upd.ModTime().Equal(orig.ModTime()) {
							break
						}
					}
				case 1: // add
					change = archive.Change{Path: path.Join(archiveRoot, fmt.Sprintf("file-%d-%d", seed, i+j)), Kind: archive.ChangeAdd}
					if err := os.WriteFile(path.Join(root, change.Path), randomContent(64, seed+int64(i+j)), 0o755); err != nil {
						return err
					}
				case 2: // delete
					change = archive.Change{Path: path.Join(archiveRoot, fmt.Sprintf("file-%d", i+j)), Kind: archive.ChangeDelete}
					if err := os.Remove(path.Join(root, change.Path)); err != nil {
						return err
					}
				}
				changes = append(changes, change)
			}
		}
		return nil
	})
	return changes
}

// addManyLayers stacks count layers on base, each adding top-id and layer-<i>/{layer-id,parent-id};
// it returns the top layer.
func (h *harness) addManyLayers(t testing.TB, base string, count int) string {
	t.Helper()
	last := base
	for i := 1; i <= count; i++ {
		next := randomID()
		h.create(t, next, last)
		parent := last
		h.withLayer(t, next, func(root string) error {
			if err := os.WriteFile(path.Join(root, "top-id"), []byte(next), 0o755); err != nil {
				return err
			}
			dir := path.Join(root, fmt.Sprintf("layer-%d", i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(path.Join(dir, "layer-id"), []byte(next), 0o755); err != nil {
				return err
			}
			return os.WriteFile(path.Join(dir, "parent-id"), []byte(parent), 0o755)
		})
		last = next
	}
	return last
}

// checkManyLayers follows the layer-<i>/parent-id chain from the top layer down.
func (h *harness) checkManyLayers(t testing.TB, top string, count int) {
	t.Helper()
	h.withLayer(t, top, func(root string) error {
		want, err := os.ReadFile(path.Join(root, "top-id"))
		if err != nil {
			return err
		}
		if string(want) != top {
			return fmt.Errorf("top-id is %q, want %q", want, top)
		}
		for i := count; i > 0; i-- {
			dir := path.Join(root, fmt.Sprintf("layer-%d", i))
			got, err := os.ReadFile(path.Join(dir, "layer-id"))
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("layer-%d/layer-id is %q, want %q", i, got, want)
			}
			if want, err = os.ReadFile(path.Join(dir, "parent-id")); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkChanges compares change lists regardless of order.
func checkChanges(want, got []archive.Change) error {
	sortChanges := func(c []archive.Change) []archive.Change {
		c = slices.Clone(c)
		slices.SortFunc(c, func(a, b archive.Change) int { return strings.Compare(a.Path, b.Path) })
		return c
	}
	want, got = sortChanges(want), sortChanges(got)
	if slices.Equal(want, got) {
		return nil
	}
	return fmt.Errorf("changes differ:\n got  %v\n want %v", got, want)
}
