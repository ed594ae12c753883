package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
)

func TestExportChanges(t *testing.T) {
	requireRoot(t)
	parent := t.TempDir()
	mustWrite(t, filepath.Join(parent, "keep/unchanged"), "u", 0o644)
	mustWrite(t, filepath.Join(parent, "keep/modified"), "m", 0o644)
	mustWrite(t, filepath.Join(parent, "gone/inner"), "g", 0o644)
	mustWrite(t, filepath.Join(parent, "keep/deleted"), "d", 0o644)
	child := cloneTree(t, parent)
	mustWrite(t, filepath.Join(child, "keep/modified"), "modified!", 0o644)
	must(t, os.Remove(filepath.Join(child, "keep/deleted")))
	must(t, os.RemoveAll(filepath.Join(child, "gone")))
	mustWrite(t, filepath.Join(child, "new/dir/file"), "0123456789", 0o600)
	must(t, os.Link(filepath.Join(child, "new/dir/file"), filepath.Join(child, "new/link1")))
	must(t, os.Link(filepath.Join(child, "new/dir/file"), filepath.Join(child, "new/link2")))
	must(t, os.Symlink("/keep/unchanged", filepath.Join(child, "new/sym")))

	changes, err := Changes(context.Background(), child, parent)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ExportChanges(context.Background(), child, changes, &buf); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name     string
		typ      byte
		linkname string
		body     string
	}
	var got []entry
	for _, e := range readTar(t, buf.Bytes()) {
		got = append(got, entry{e.hdr.Name, e.hdr.Typeflag, e.hdr.Linkname, e.body})
	}
	want := []entry{
		{".wh.gone", tar.TypeReg, "", ""},
		{"keep/", tar.TypeDir, "", ""},
		{"keep/.wh.deleted", tar.TypeReg, "", ""},
		{"keep/modified", tar.TypeReg, "", "modified!"},
		{"new/", tar.TypeDir, "", ""},
		{"new/dir/", tar.TypeDir, "", ""},
		{"new/dir/file", tar.TypeReg, "", "0123456789"},
		{"new/link1", tar.TypeLink, "new/dir/file", ""},
		{"new/link2", tar.TypeLink, "new/dir/file", ""},
		{"new/sym", tar.TypeSymlink, "/keep/unchanged", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exported\n%+v\nwant\n%+v", got, want)
	}

	size, err := ChangesSize(child, changes)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len("modified!")+len("0123456789")) {
		t.Errorf("ChangesSize = %d, want %d", size, len("modified!")+len("0123456789"))
	}

	// Applying the export onto a copy of the parent reproduces the child; the applied size is
	// ChangesSize.
	applied := cloneTree(t, parent)
	n, err := Apply(context.Background(), applied, bytes.NewReader(buf.Bytes()), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Errorf("Apply size %d, ChangesSize %d", n, size)
	}
	cs, err := Changes(context.Background(), applied, child)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 {
		t.Errorf("parent + exported diff differs from child: %s", changeList(cs))
	}
}

func TestExportChangesErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		changes []Change
		want    error
	}{
		{"missing path", []Change{{"/nope", ChangeAdd}}, errdefs.ErrNotFound},
		{"path climbing out", []Change{{"/../../etc/passwd", ChangeAdd}}, errdefs.ErrInvalidArgument},
		{"root", []Change{{"/", ChangeModify}}, errdefs.ErrInvalidArgument},
		{"bad kind", []Change{{"/x", ChangeKind(9)}}, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ExportChanges(context.Background(), dir, tc.changes, &bytes.Buffer{})
			if !errors.Is(err, tc.want) {
				t.Errorf("ExportChanges = %v, want class %v", err, tc.want)
			}
		})
	}
}

func TestChangesSizeCountsHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "a"), "12345", 0o644)
	must(t, os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")))
	mustWrite(t, filepath.Join(dir, "c"), "123", 0o644)
	must(t, os.Symlink("a-long-target-name", filepath.Join(dir, "s")))
	must(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	changes := []Change{{"/a", ChangeAdd}, {"/b", ChangeAdd}, {"/c", ChangeModify}, {"/s", ChangeAdd}, {"/d", ChangeAdd},
		{"/deleted", ChangeDelete}, {"/vanished", ChangeAdd}}
	size, err := ChangesSize(dir, changes)
	if err != nil {
		t.Fatal(err)
	}
	if size != 8 {
		t.Errorf("ChangesSize = %d, want 8", size)
	}
}
