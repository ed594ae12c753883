package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// buildTree makes a tree with every kind of file Tar and Apply handle.
func buildTree(t *testing.T, dir string) {
	t.Helper()
	mustWrite(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0", 0o644)
	mustWrite(t, filepath.Join(dir, "bin/su"), "#!/bin/sh", 0o755)
	mustWrite(t, filepath.Join(dir, "a/b/c/deep"), "deep", 0o600)
	mustWrite(t, filepath.Join(dir, "empty"), "", 0o644)
	mustWrite(t, filepath.Join(dir, "big"), string(bytes.Repeat([]byte("0123456789abcdef"), 100000)), 0o644)
	must(t, os.Chmod(filepath.Join(dir, "bin/su"), 0o4755|os.ModeSetuid))
	must(t, unix.Chmod(filepath.Join(dir, "bin/su"), 0o4755))
	must(t, os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(t, unix.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	must(t, os.Lchown(filepath.Join(dir, "etc/passwd"), 100, 200))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link")))
	must(t, os.Symlink("../etc", filepath.Join(dir, "a/rel-link")))
	must(t, os.Lchown(filepath.Join(dir, "a/rel-link"), 5, 6))
	must(t, os.Link(filepath.Join(dir, "etc/passwd"), filepath.Join(dir, "a/hard")))
	must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	must(t, unix.Setxattr(filepath.Join(dir, "etc/passwd"), "user.test", []byte("v"), 0))
	must(t, unix.Setxattr(filepath.Join(dir, "a"), "trusted.dir", []byte("d"), 0))
	long := filepath.Join(dir, "long-"+string(bytes.Repeat([]byte("n"), 150)))
	mustWrite(t, long, "long name", 0o644)
	ts := []unix.Timespec{unix.NsecToTimespec(1600000000123456789), unix.NsecToTimespec(1600000000123456789)}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, "empty"), ts, 0))
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, "abs-link"), ts, unix.AT_SYMLINK_NOFOLLOW))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTarApplyRoundTrip(t *testing.T) {
	requireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	buildTree(t, src)
	var buf bytes.Buffer
	if err := Tar(context.Background(), src, &buf, TarOptions{}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range readTar(t, buf.Bytes()) {
		names = append(names, e.hdr.Name)
		if e.hdr.Name == "etc/passwd" && (e.hdr.Typeflag != tar.TypeLink || e.hdr.Linkname != "a/hard") {
			t.Errorf("etc/passwd is %q -> %q, want a hard link to a/hard", e.hdr.Typeflag, e.hdr.Linkname)
		}
	}
	wantNames := []string{"a/", "a/b/", "a/b/c/", "a/b/c/deep", "a/hard", "a/rel-link", "abs-link", "big", "bin/", "bin/su",
		"empty", "etc/", "etc/passwd", "fifo", "long-" + string(bytes.Repeat([]byte("n"), 150)), "null", "tmp/"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("tar entries\n%v\nwant\n%v", names, wantNames)
	}
	n, err := Apply(context.Background(), dst, bytes.NewReader(buf.Bytes()), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(10 + 9 + 4 + 1600000 + 9); n != want {
		t.Errorf("Apply size %d, want %d", n, want)
	}
	for _, pair := range [][2]string{{dst, src}, {src, dst}} {
		cs, err := Changes(context.Background(), pair[0], pair[1])
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 0 {
			t.Errorf("Changes(%s, %s) after round trip: %s", pair[0], pair[1], changeList(cs))
		}
	}
	// Hard links survive (etc/passwd, a/hard).
	if a, b := lstat(t, filepath.Join(dst, "a/hard")), lstat(t, filepath.Join(dst, "etc/passwd")); a.Ino != b.Ino {
		t.Errorf("a/hard and etc/passwd are not linked after the round trip")
	}
	// A second round trip gives the same bytes.
	var again bytes.Buffer
	if err := Tar(context.Background(), dst, &again, TarOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("Tar(Apply(Tar(src))) differs from Tar(src)")
	}
}

func TestTarOverlayWhiteouts(t *testing.T) {
	requireRoot(t)
	src := t.TempDir()
	must(t, unix.Mknod(filepath.Join(src, "deleted"), unix.S_IFCHR, 0))
	must(t, os.MkdirAll(filepath.Join(src, "opq/sub"), 0o750))
	mustWrite(t, filepath.Join(src, "opq/new"), "n", 0o644)
	must(t, unix.Setxattr(filepath.Join(src, "opq"), overlayOpaqueXattr, []byte("y"), 0))
	must(t, unix.Setxattr(filepath.Join(src, "opq"), "user.keep", []byte("k"), 0))
	must(t, unix.Mknod(filepath.Join(src, "opq/sub/gone"), unix.S_IFCHR, 0))
	must(t, unix.Mknod(filepath.Join(src, "realdev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))))

	var buf bytes.Buffer
	if err := Tar(context.Background(), src, &buf, TarOptions{WhiteoutFormat: WhiteoutOverlay}); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name string
		typ  byte
		pax  map[string]string
	}
	var got []entry
	for _, e := range readTar(t, buf.Bytes()) {
		got = append(got, entry{e.hdr.Name, e.hdr.Typeflag, e.hdr.PAXRecords})
	}
	want := []entry{
		{".wh.deleted", tar.TypeReg, nil},
		{"opq/", tar.TypeDir, map[string]string{"SCHILY.xattr.user.keep": "k"}},
		{"opq/.wh..wh..opq", tar.TypeReg, nil},
		{"opq/new", tar.TypeReg, nil},
		{"opq/sub/", tar.TypeDir, nil},
		{"opq/sub/.wh.gone", tar.TypeReg, nil},
		{"realdev", tar.TypeChar, nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries\n%+v\nwant\n%+v", got, want)
	}

	// The same tree in OCI format keeps the devices and the xattr as they are.
	buf.Reset()
	if err := Tar(context.Background(), src, &buf, TarOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range readTar(t, buf.Bytes()) {
		if e.hdr.Name == "deleted" && e.hdr.Typeflag != tar.TypeChar {
			t.Errorf("OCI tar converted the 0/0 device")
		}
		if e.hdr.Name == "opq/" && e.hdr.PAXRecords["SCHILY.xattr."+overlayOpaqueXattr] != "y" {
			t.Errorf("OCI tar dropped the opaque xattr")
		}
	}

	// Overlay tar → overlay apply reproduces the whiteouts.
	dst := t.TempDir()
	var ovl bytes.Buffer
	must(t, Tar(context.Background(), src, &ovl, TarOptions{WhiteoutFormat: WhiteoutOverlay}))
	if _, err := Apply(context.Background(), dst, &ovl, ApplyOptions{WhiteoutFormat: WhiteoutOverlay}); err != nil {
		t.Fatal(err)
	}
	cs, err := Changes(context.Background(), dst, src)
	if err != nil {
		t.Fatal(err)
	}
	// Only the whiteout devices' times differ (a whiteout entry carries none).
	for _, c := range cs {
		if c.Path != "/deleted" && c.Path != "/opq/sub/gone" && c.Path != "/opq/sub" && c.Path != "/opq" {
			t.Errorf("unexpected change after overlay round trip: %s", c)
		}
	}
}

func TestTarTruncatesTimesToSeconds(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "f"), "x", 0o644)
	must(t, os.Chtimes(filepath.Join(src, "f"), time.Unix(5, 999), time.Unix(1700000000, 999999999)))
	var buf bytes.Buffer
	must(t, Tar(context.Background(), src, &buf, TarOptions{}))
	ents := readTar(t, buf.Bytes())
	if len(ents) != 1 || !ents[0].hdr.ModTime.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("entries %+v, want f with mtime 1700000000", ents)
	}
}
