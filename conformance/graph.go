package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
)

// graphCases are the established graphtest cases, with its assertions.
func graphCases() []testCase {
	return []testCase{
		{name: "CreateEmpty", run: testCreateEmpty},
		{name: "CreateBase", run: testCreateBase},
		{name: "CreateSnap", run: testCreateSnap},
		{name: "CreateFromTemplate", run: testCreateFromTemplate},
		{name: "DeepLayerRead", run: testDeepLayerRead},
		{name: "DiffApply", run: testDiffApply},
		{name: "Changes", run: testChanges},
		{name: "SetQuota", run: testSetQuota, needs: func(cfg Config) string {
			if !cfg.Quota {
				return "driver " + cfg.Driver + " does not enforce a size quota (Config.Quota is false)"
			}
			return ""
		}},
		{name: "Echo", run: testEcho},
		{name: "ListLayers", run: testListLayers},
	}
}

// testCreateEmpty: a base layer exists, and mounts as an empty 0555 directory owned by root.
func testCreateEmpty(t *testing.T, h *harness) {
	h.create(t, "empty", "")
	ok, err := h.d.Exists(t.Context(), "empty")
	if err != nil || !ok {
		t.Fatalf("Exists(empty) = %v, %v after Create", ok, err)
	}
	h.withLayer(t, "empty", func(root string) error {
		return errors.Join(checkFileMode(root, defaultPerms|os.ModeDir, 0, 0), checkEntries(root))
	})
}

// testCreateBase: contents and permissions of a base layer survive Put and Get.
func testCreateBase(t *testing.T, h *harness) {
	h.createBase(t, "Base1")
	h.verifyBase(t, "Base1", defaultPerms)
}

// testCreateSnap: a child sees its parent's contents; a chmod of the child's root is inherited
// by the grandchild.
func testCreateSnap(t *testing.T, h *harness) {
	h.createBase(t, "Base2")
	h.create(t, "Snap2", "Base2")
	h.verifyBase(t, "Snap2", defaultPerms)
	h.withLayer(t, "Snap2", func(root string) error { return os.Chmod(root, modifiedPerms) })
	h.create(t, "SecondSnap", "Snap2")
	h.verifyBase(t, "SecondSnap", modifiedPerms)
	h.verifyBase(t, "Base2", defaultPerms)
}

// testCreateFromTemplate: a layer made from a template (the template's diff against its parent,
// applied to a new layer on the same parent), read-write and read-only, has no changes against
// the template and the same changes against the parent.
func testCreateFromTemplate(t *testing.T, h *harness) {
	ctx := t.Context()
	h.createBase(t, "Base3")
	h.create(t, "Snap3", "Base3")
	content := []byte("test content")
	h.addFile(t, "Snap3", "testfile.txt", content)

	wantChanges := []archive.Change{{Path: "/testfile.txt", Kind: archive.ChangeAdd}}
	if err := checkChanges(wantChanges, h.changes(t, "Snap3", "Base3")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id string
		rw bool
	}{{"FromTemplate", true}, {"ROFromTemplate", false}} {
		h.createOpts(t, c.id, "Base3", pluginapi.CreateOpts{ReadWrite: c.rw})
		tarball := h.diffBytes(t, "Snap3", "Base3")
		if _, err := h.d.ApplyDiff(ctx, c.id, "Base3", bytes.NewReader(tarball)); err != nil {
			t.Fatalf("apply the diff of Snap3 to %s: %v", c.id, err)
		}
		if err := checkChanges(nil, h.changes(t, c.id, "Snap3")); err != nil {
			t.Fatalf("%s against its template: %v", c.id, err)
		}
		if err := checkChanges(wantChanges, h.changes(t, c.id, "Base3")); err != nil {
			t.Fatalf("%s against Base3: %v", c.id, err)
		}
		h.checkFile(t, c.id, "testfile.txt", content)
	}
	h.checkFile(t, "Snap3", "testfile.txt", content)
	h.verifyBase(t, "Base3", defaultPerms)
}

// diffBytes reads the whole Diff(id, parent) stream.
func (h *harness) diffBytes(t testing.TB, id, parent string) []byte {
	t.Helper()
	rc, err := h.d.Diff(t.Context(), id, parent)
	if err != nil {
		t.Fatalf("diff layer %s against %q: %v", id, parent, err)
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("read diff of layer %s against %q: %v", id, parent, err)
	}
	return b
}

// testDeepLayerRead: a file of the base layer is readable through n stacked layers.
func testDeepLayerRead(t *testing.T, h *harness) {
	n := h.cfg.DeepLayerRead
	if n == 0 {
		n = 10
	}
	base := randomID()
	h.create(t, base, "")
	content := []byte("test content")
	h.addFile(t, base, "testfile.txt", content)
	top := h.addManyLayers(t, base, n)
	h.checkManyLayers(t, top, n)
	h.checkFile(t, top, "testfile.txt", content)
}

// testDiffApply: the diff of a layer, applied to a sibling on the same parent, reproduces its
// files and its deletions (whiteouts), and ApplyDiff's size equals DiffSize.
func testDiffApply(t *testing.T, h *harness) {
	n := h.cfg.DiffApplyFiles
	if n == 0 {
		n = 100
	}
	base, upper, sibling := randomID(), randomID(), randomID()
	deleteFile := "file-remove.txt"
	deleteContent := []byte("This file should get removed in upper!")
	deleteDir := "var/lib"

	h.create(t, base, "")
	h.addManyFiles(t, base, n, 3)
	h.addFile(t, base, deleteFile, deleteContent)
	h.withLayer(t, base, func(root string) error { return os.MkdirAll(filepath.Join(root, deleteDir), 0o755) })

	h.create(t, upper, base)
	h.addManyFiles(t, upper, n, 6)
	h.withLayer(t, upper, func(root string) error {
		return errors.Join(os.RemoveAll(filepath.Join(root, deleteFile)), os.RemoveAll(filepath.Join(root, deleteDir)))
	})

	diffSize, err := h.d.DiffSize(t.Context(), upper, base)
	if err != nil {
		t.Fatalf("diff size of %s: %v", upper, err)
	}
	h.create(t, sibling, base)
	h.checkManyFiles(t, sibling, n, 3)
	h.checkFile(t, sibling, deleteFile, deleteContent)

	tarball := h.diffBytes(t, upper, base)
	applied, err := h.d.ApplyDiff(t.Context(), sibling, base, bytes.NewReader(tarball))
	if err != nil {
		t.Fatalf("apply diff to %s: %v", sibling, err)
	}
	if applied != diffSize {
		t.Fatalf("ApplyDiff wrote %d bytes, DiffSize said %d", applied, diffSize)
	}
	h.checkManyFiles(t, sibling, n, 6)
	h.checkRemoved(t, sibling, deleteFile)
	h.checkRemoved(t, sibling, deleteDir)
}

// testChanges: Changes between parent and child lists exactly the files modified, added and
// deleted.
func testChanges(t *testing.T, h *harness) {
	base, upper := randomID(), randomID()
	h.create(t, base, "")
	h.addManyFiles(t, base, 20, 3)
	h.create(t, upper, base)
	want := h.changeManyFiles(t, upper, 20, 6)
	if err := checkChanges(want, h.changes(t, upper, base)); err != nil {
		t.Fatal(err)
	}
}

// testSetQuota: with StorageOpt size=50M, writing 100 MiB fails with EDQUOT (or ENOSPC).
func testSetQuota(t *testing.T, h *harness) {
	h.createBase(t, "Base4")
	h.createOpts(t, "quotaTest", "Base4", pluginapi.CreateOpts{StorageOpt: map[string]string{"size": "50M"}})
	h.withLayer(t, "quotaTest", func(root string) error {
		p := filepath.Join(root, "file")
		defer os.Remove(p)
		err := writeRandomFile(p, 2*50<<20)
		if err == nil {
			return fmt.Errorf("wrote 100 MiB into a layer with a 50M quota")
		}
		if !errors.Is(err, unix.EDQUOT) && !errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("write past the quota failed with %v, want EDQUOT or ENOSPC", err)
		}
		return nil
	})
}

func writeRandomFile(p string, size int) (retErr error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o700)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); retErr == nil {
			retErr = err
		}
	}()
	chunk := randomContent(1<<20, 0)
	for written := 0; written < size; written += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			return err
		}
	}
	return f.Sync()
}

// testEcho: ten rounds of nested directories where the second layer deletes the subtree at depth
// d and the third re-adds it; Changes must list exactly the modified parents, the deleted root
// of the subtree, and the re-added paths. These are the cases a naive diff gets wrong.
func testEcho(t *testing.T, h *harness) {
	const components = 10
	ctx := t.Context()
	for depth := 0; depth < components; depth++ {
		base, second, third := randomID(), randomID(), randomID()
		h.create(t, base, "")
		var paths []string
		var want []archive.Change
		p := "/"
		h.withLayer(t, base, func(root string) error {
			for i := 0; i < components-1; i++ {
				p = filepath.Join(p, fmt.Sprintf("subdir%d", i+1))
				paths = append(paths, p)
				if err := os.Mkdir(filepath.Join(root, p), 0o700); err != nil {
					return err
				}
				want = append(want, archive.Change{Kind: archive.ChangeAdd, Path: p})
			}
			p = filepath.Join(p, "file")
			paths = append(paths, p)
			want = append(want, archive.Change{Kind: archive.ChangeAdd, Path: p})
			return os.WriteFile(filepath.Join(root, p), randomContent(128, int64(depth)), 0o600)
		})
		if err := checkChanges(want, h.changes(t, base, "")); err != nil {
			t.Fatalf("depth %d, base against nothing: %v", depth, err)
		}

		h.create(t, second, base)
		h.withLayer(t, second, func(root string) error { return os.RemoveAll(filepath.Join(root, paths[depth])) })
		want = nil
		for i := 0; i < depth; i++ {
			want = append(want, archive.Change{Kind: archive.ChangeModify, Path: paths[i]})
		}
		want = append(want, archive.Change{Kind: archive.ChangeDelete, Path: paths[depth]})
		if err := checkChanges(want, h.changes(t, second, base)); err != nil {
			t.Fatalf("depth %d, second against base: %v", depth, err)
		}

		h.create(t, third, second)
		want = nil
		for i := 0; i < depth; i++ {
			want = append(want, archive.Change{Kind: archive.ChangeModify, Path: paths[i]})
		}
		h.withLayer(t, third, func(root string) error {
			for i := depth; i < components-1; i++ {
				if err := os.Mkdir(filepath.Join(root, paths[i]), 0o700); err != nil {
					return err
				}
				want = append(want, archive.Change{Kind: archive.ChangeAdd, Path: paths[i]})
			}
			want = append(want, archive.Change{Kind: archive.ChangeAdd, Path: paths[len(paths)-1]})
			return os.WriteFile(filepath.Join(root, paths[len(paths)-1]), randomContent(128, int64(depth)), 0o600)
		})
		if err := checkChanges(want, h.changes(t, third, second)); err != nil {
			t.Fatalf("depth %d, third against second: %v", depth, err)
		}
		for _, id := range []string{third, second, base} {
			if err := h.d.Put(ctx, id); err != nil {
				t.Fatalf("put %s: %v", id, err)
			}
		}
	}
}

// testListLayers: ListLayers returns exactly the layers created, base and children alike.
func testListLayers(t *testing.T, h *harness) {
	want := []string{"list-base", "list-child", "list-grandchild", "list-sibling", randomID()}
	h.create(t, want[0], "")
	h.create(t, want[1], want[0])
	h.create(t, want[2], want[1])
	h.create(t, want[3], want[0])
	h.create(t, want[4], "")
	got, err := h.d.ListLayers(t.Context())
	if err != nil {
		t.Fatalf("list layers: %v", err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("ListLayers = %q, want %q", got, want)
	}
}
