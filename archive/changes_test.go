package archive

import (
	"bytes"
	"context"
	"errors"
	"github.com/pluggable-storage/storage/errdefs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cloneTree copies src to a new directory with Tar and Apply (times, owners and xattrs kept).
func cloneTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	var buf bytes.Buffer
	must(t, Tar(context.Background(), src, &buf, TarOptions{}))
	if _, err := Apply(context.Background(), dst, &buf, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestChanges(t *testing.T) {
	requireRoot(t)
	later := time.Unix(1800000000, 0)
	base := func(t *testing.T, dir string) {
		mustWrite(t, filepath.Join(dir, "a/x"), "x", 0o644)
		mustWrite(t, filepath.Join(dir, "a/sub/y"), "y", 0o644)
		mustWrite(t, filepath.Join(dir, "a/sub/deeper/z"), "z", 0o644)
		mustWrite(t, filepath.Join(dir, "a-b"), "ab", 0o644)
		mustWrite(t, filepath.Join(dir, "f"), "f", 0o644)
		must(t, os.Symlink("f", filepath.Join(dir, "l")))
		must(t, os.MkdirAll(filepath.Join(dir, "d/e/g"), 0o755))
		mustWrite(t, filepath.Join(dir, "d/e/g/h"), "h", 0o644)
	}
	p := func(dir, rel string) string { return filepath.Join(dir, rel) }
	cases := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []Change
	}{
		{"nothing", func(t *testing.T, dir string) {}, nil},
		{"add nested new dir", func(t *testing.T, dir string) { mustWrite(t, p(dir, "new/inner/f"), "n", 0o644) },
			[]Change{{"/new", ChangeAdd}, {"/new/inner", ChangeAdd}, {"/new/inner/f", ChangeAdd}}},
		{"add in existing dir", func(t *testing.T, dir string) { mustWrite(t, p(dir, "a/sub/new"), "n", 0o644) },
			[]Change{{"/a", ChangeModify}, {"/a/sub", ChangeModify}, {"/a/sub/new", ChangeAdd}}},
		{"modify content", func(t *testing.T, dir string) { mustWrite(t, p(dir, "a/x"), "longer", 0o644) },
			[]Change{{"/a", ChangeModify}, {"/a/x", ChangeModify}}},
		{"modify file mtime only", func(t *testing.T, dir string) { must(t, os.Chtimes(p(dir, "f"), later, later)) },
			[]Change{{"/f", ChangeModify}}},
		{"directory mtime only is not a change", func(t *testing.T, dir string) { must(t, os.Chtimes(p(dir, "a/sub"), later, later)) }, nil},
		{"chmod", func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "a-b"), 0o600)) }, []Change{{"/a-b", ChangeModify}}},
		{"chmod dir", func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "d"), 0o700)) }, []Change{{"/d", ChangeModify}}},
		{"chown", func(t *testing.T, dir string) { must(t, os.Lchown(p(dir, "l"), 9, 9)) }, []Change{{"/l", ChangeModify}}},
		{"xattr", func(t *testing.T, dir string) { must(t, unix.Setxattr(p(dir, "f"), "user.new", []byte("1"), 0)) },
			[]Change{{"/f", ChangeModify}}},
		{"symlink target", func(t *testing.T, dir string) {
			st := lstat(t, p(dir, "l"))
			must(t, os.Remove(p(dir, "l")))
			must(t, os.Symlink("g", p(dir, "l")))
			ts := []unix.Timespec{st.Atim, st.Mtim}
			must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p(dir, "l"), ts, unix.AT_SYMLINK_NOFOLLOW))
		}, []Change{{"/l", ChangeModify}}},
		{"delete file", func(t *testing.T, dir string) { must(t, os.Remove(p(dir, "a/sub/y"))) },
			[]Change{{"/a", ChangeModify}, {"/a/sub", ChangeModify}, {"/a/sub/y", ChangeDelete}}},
		{"delete dir reports only the dir", func(t *testing.T, dir string) { must(t, os.RemoveAll(p(dir, "a/sub"))) },
			[]Change{{"/a", ChangeModify}, {"/a/sub", ChangeDelete}}},
		{"file replaced by dir", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "f")))
			mustWrite(t, p(dir, "f/child"), "c", 0o644)
		}, []Change{{"/f", ChangeModify}, {"/f/child", ChangeAdd}}},
		{"dir replaced by file", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(p(dir, "d")))
			mustWrite(t, p(dir, "d"), "now a file", 0o644)
		}, []Change{{"/d", ChangeModify}}},
		{"delete and re-add in nested dirs", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(p(dir, "d/e")))
			mustWrite(t, p(dir, "d/e/g/h"), "h2", 0o644)
		}, []Change{{"/d", ChangeModify}, {"/d/e", ChangeModify}, {"/d/e/g", ChangeModify}, {"/d/e/g/h", ChangeModify}}},
		{"re-add with same content and time is no change", func(t *testing.T, dir string) {
			st := lstat(t, p(dir, "a/x"))
			must(t, os.Remove(p(dir, "a/x")))
			mustWrite(t, p(dir, "a/x"), "x", 0o644)
			must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p(dir, "a/x"), []unix.Timespec{st.Atim, st.Mtim}, 0))
		}, nil},
		{"deep change marks every ancestor", func(t *testing.T, dir string) { mustWrite(t, p(dir, "a/sub/deeper/z"), "zz", 0o644) },
			[]Change{{"/a", ChangeModify}, {"/a/sub", ChangeModify}, {"/a/sub/deeper", ChangeModify}, {"/a/sub/deeper/z", ChangeModify}}},
		{"sorted by path string", func(t *testing.T, dir string) {
			mustWrite(t, p(dir, "a/zz"), "n", 0o644)
			mustWrite(t, p(dir, "a-b"), "changed", 0o644)
			mustWrite(t, p(dir, "0"), "n", 0o644)
		}, []Change{{"/0", ChangeAdd}, {"/a", ChangeModify}, {"/a-b", ChangeModify}, {"/a/zz", ChangeAdd}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			base(t, parent)
			child := cloneTree(t, parent)
			tc.change(t, child)
			got, err := Changes(context.Background(), child, parent)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Changes = [%s]\nwant      [%s]", changeList(got), changeList(tc.want))
			}
		})
	}
}

func TestChangesAgainstNothing(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "a/b"), "b", 0o644)
	mustWrite(t, filepath.Join(dir, "c"), "c", 0o644)
	got, err := Changes(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{"/a", ChangeAdd}, {"/a/b", ChangeAdd}, {"/c", ChangeAdd}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Changes = [%s], want [%s]", changeList(got), changeList(want))
	}
}

func TestChangesMissingDir(t *testing.T) {
	_, err := Changes(context.Background(), filepath.Join(t.TempDir(), "nope"), "")
	if err == nil {
		t.Fatal("Changes of a missing directory succeeded")
	}
	if !errors.Is(err, errdefs.ErrNotFound) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v is not ErrNotFound", err)
	}
}
