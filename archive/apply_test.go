package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluggable-storage/storage/errdefs"
	"golang.org/x/sys/unix"
)

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return st
}

func TestApplyEntries(t *testing.T) {
	requireRoot(t)
	mtime := time.Unix(1600000000, 123456789)
	atime := time.Unix(1500000000, 0)
	suid := file("bin/su", "#!")
	suid.hdr.Mode = 0o4755
	suid.hdr.Uid, suid.hdr.Gid = 1234, 5678
	suid.hdr.ModTime, suid.hdr.AccessTime = mtime, atime
	suid.hdr.Format = tar.FormatPAX
	sticky := dirEnt("tmp/")
	sticky.hdr.Mode = 0o1777
	sticky.hdr.ModTime = mtime
	sticky.hdr.Format = tar.FormatPAX
	sgidDir := dirEnt("shared/")
	sgidDir.hdr.Mode = 0o2750
	sgidDir.hdr.Uid, sgidDir.hdr.Gid = 10, 20
	lnk := symlink("bin/sh", "/bin/bash")
	lnk.hdr.Uid, lnk.hdr.Gid = 7, 8
	lnk.hdr.ModTime = mtime
	lnk.hdr.Format = tar.FormatPAX
	x := file("etc/xattrs", "x")
	x.hdr.PAXRecords = map[string]string{
		"SCHILY.xattr.user.comment":        "hello",
		"SCHILY.xattr.trusted.test":        "t\x00bin",
		"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
	}
	blk := ent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loopX", Mode: 0o660, Devmajor: 7, Devminor: 200, Uid: 0, Gid: 6}}
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o620}}

	data := buildTar(t,
		dirEnt("bin/"), suid, lnk, sticky, sgidDir, file("shared/f", "f"),
		dirEnt("etc/"), x, charDev("dev/null", 1, 3), blk, fifo,
		file("data/a", "aaaa"), hardlink("data/b", "data/a"), hardlink("data/c", "/data/b"),
		file("implicit/parent/file", "p"),
	)
	root := t.TempDir()
	n, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len("#!")+1+1+4+1) {
		t.Errorf("Apply size = %d, want %d", n, 9)
	}

	type want struct {
		path      string
		mode      uint32 // with type bits
		uid, gid  uint32
		mtime     *time.Time
		atime     *time.Time
		rdev      uint64
		nlink     uint64
		content   string
		target    string
		xattrs    map[string]string
		checkLink bool
	}
	wants := []want{
		{path: "bin/su", mode: unix.S_IFREG | 0o4755, uid: 1234, gid: 5678, mtime: &mtime, atime: &atime, content: "#!", nlink: 1},
		{path: "bin/sh", mode: unix.S_IFLNK | 0o777, uid: 7, gid: 8, mtime: &mtime, target: "/bin/bash"},
		{path: "tmp", mode: unix.S_IFDIR | 0o1777, mtime: &mtime},
		{path: "shared", mode: unix.S_IFDIR | 0o2750, uid: 10, gid: 20, mtime: &testTime},
		{path: "etc/xattrs", mode: unix.S_IFREG | 0o644, content: "x", xattrs: map[string]string{
			"user.comment": "hello", "trusted.test": "t\x00bin",
			"security.capability": x.hdr.PAXRecords["SCHILY.xattr.security.capability"]}},
		{path: "dev/null", mode: unix.S_IFCHR | 0o666, rdev: unix.Mkdev(1, 3)},
		{path: "dev/loopX", mode: unix.S_IFBLK | 0o660, gid: 6, rdev: unix.Mkdev(7, 200)},
		{path: "run/fifo", mode: unix.S_IFIFO | 0o620},
		{path: "data/a", mode: unix.S_IFREG | 0o644, content: "aaaa", nlink: 3},
		{path: "data/c", mode: unix.S_IFREG | 0o644, content: "aaaa", nlink: 3},
		{path: "implicit/parent", mode: unix.S_IFDIR | 0o755},
	}
	for _, w := range wants {
		t.Run(w.path, func(t *testing.T) {
			p := filepath.Join(root, w.path)
			st := lstat(t, p)
			if st.Mode != w.mode || st.Uid != w.uid || st.Gid != w.gid {
				t.Errorf("mode %o uid %d gid %d, want %o %d %d", st.Mode, st.Uid, st.Gid, w.mode, w.uid, w.gid)
			}
			if w.mtime != nil && (st.Mtim.Sec != w.mtime.Unix() || st.Mtim.Nsec != int64(w.mtime.Nanosecond())) {
				t.Errorf("mtime %d.%d, want %v", st.Mtim.Sec, st.Mtim.Nsec, *w.mtime)
			}
			if w.atime != nil && st.Atim.Sec != w.atime.Unix() {
				t.Errorf("atime %d, want %v", st.Atim.Sec, *w.atime)
			}
			if w.rdev != 0 && st.Rdev != w.rdev {
				t.Errorf("rdev %x, want %x", st.Rdev, w.rdev)
			}
			if w.nlink != 0 && st.Nlink != w.nlink {
				t.Errorf("nlink %d, want %d", st.Nlink, w.nlink)
			}
			if w.content != "" && readString(t, p) != w.content {
				t.Errorf("content %q, want %q", readString(t, p), w.content)
			}
			if w.target != "" {
				if got, _ := os.Readlink(p); got != w.target {
					t.Errorf("target %q, want %q", got, w.target)
				}
			}
			if w.xattrs != nil {
				got, err := readXattrs(p)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range w.xattrs {
					if got[k] != v {
						t.Errorf("xattr %s = %q, want %q", k, got[k], v)
					}
				}
			}
		})
	}
}

func TestApplyReplacesExisting(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "dir/keep"), "keep", 0o644)
	mustWrite(t, filepath.Join(root, "file-to-dir"), "f", 0o644)
	mustWrite(t, filepath.Join(root, "dir-to-file/child"), "c", 0o644)
	data := buildTar(t, dirEnt("dir/"), dirEnt("file-to-dir/"), file("dir-to-file", "now a file"), file("dir/keep", "new"))
	if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(root, "file-to-dir")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("file-to-dir is not a directory")
	}
	if got := readString(t, filepath.Join(root, "dir-to-file")); got != "now a file" {
		t.Errorf("dir-to-file = %q", got)
	}
	if got := readString(t, filepath.Join(root, "dir/keep")); got != "new" {
		t.Errorf("dir/keep = %q", got)
	}
}

func TestApplyWhiteouts(t *testing.T) {
	requireRoot(t)
	prepare := func(t *testing.T, root string) {
		mustWrite(t, filepath.Join(root, "a/gone"), "x", 0o644)
		mustWrite(t, filepath.Join(root, "a/kept"), "x", 0o644)
		mustWrite(t, filepath.Join(root, "opq/old/deep"), "x", 0o644)
		mustWrite(t, filepath.Join(root, "opq/old2"), "x", 0o644)
		mustWrite(t, filepath.Join(root, "gonedir/x/y"), "x", 0o644)
	}
	data := buildTar(t,
		file("a/.wh.gone", ""),
		file(".wh.gonedir", ""),
		file("a/.wh.never-existed", ""),
		file("missing/.wh.x", ""),
		dirEnt("opq/"), file("opq/new", "n"), dirEnt("opq/newdir/"), file("opq/newdir/f", "f"),
		file("opq/implicit/g", "g"),
		file("opq/.wh..wh..opq", ""),
		file(".wh..wh.plnk", ""),
	)

	t.Run("oci", func(t *testing.T) {
		root := t.TempDir()
		prepare(t, root)
		if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"a/gone", "gonedir", "opq/old", "opq/old2", "missing", ".wh..wh.plnk", "a/.wh.gone", "opq/.wh..wh..opq"} {
			if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still exists (%v)", p, err)
			}
		}
		for _, p := range []string{"a/kept", "opq/new", "opq/newdir/f", "opq/implicit/g"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	})
	t.Run("overlay", func(t *testing.T) {
		root := t.TempDir()
		prepare(t, root)
		wo := file("a/.wh.owned", "")
		wo.hdr.Uid, wo.hdr.Gid = 3, 4
		d := append(buildTar(t, wo)[:0:0], data...)
		if _, err := Apply(context.Background(), root, bytes.NewReader(d), ApplyOptions{WhiteoutFormat: WhiteoutOverlay}); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(context.Background(), root, bytes.NewReader(buildTar(t, wo)), ApplyOptions{WhiteoutFormat: WhiteoutOverlay}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"a/gone", "gonedir", "a/never-existed", "missing/x", "a/owned"} {
			st := lstat(t, filepath.Join(root, p))
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("%s: mode %o rdev %d, want a 0/0 char device", p, st.Mode, st.Rdev)
			}
		}
		if st := lstat(t, filepath.Join(root, "a/owned")); st.Uid != 3 || st.Gid != 4 {
			t.Errorf("a/owned owner %d:%d, want 3:4", st.Uid, st.Gid)
		}
		x, err := readXattrs(filepath.Join(root, "opq"))
		if err != nil || x[overlayOpaqueXattr] != "y" {
			t.Errorf("opq xattrs %v %v, want opaque", x, err)
		}
		// Overlay keeps the lower contents: the upper dir only gets the marker.
		for _, p := range []string{"opq/old/deep", "opq/new", "a/kept"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	})
}

func TestApplyForceMask(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	mask := os.FileMode(0o700)
	f := file("f", "x")
	f.hdr.Mode, f.hdr.Uid, f.hdr.Gid = 0o4755, 1000, 100
	d := dirEnt("d/")
	d.hdr.Uid = 5
	data := buildTar(t, f, d, symlink("l", "f"), charDev("c", 1, 3))
	if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{ForceMask: &mask}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, stat string }{{"f", "1000:100:04755"}, {"d", "5:0:0755"}, {"c", ""}} {
		st := lstat(t, filepath.Join(root, tc.path))
		if st.Mode&0o7777 != 0o700 || st.Uid != 0 {
			t.Errorf("%s: mode %o uid %d, want 0700 owned by the applier", tc.path, st.Mode&0o7777, st.Uid)
		}
		x, err := readXattrs(filepath.Join(root, tc.path))
		if err != nil || x[overrideStatXattr] != tc.stat {
			t.Errorf("%s: %s = %q (%v), want %q", tc.path, overrideStatXattr, x[overrideStatXattr], err, tc.stat)
		}
	}
	if x, _ := readXattrs(filepath.Join(root, "l")); x[overrideStatXattr] != "" {
		t.Errorf("symlink got %s", overrideStatXattr)
	}
}

// TestApplyChownErrors runs Apply in a subprocess without CAP_CHOWN (setpriv drops it from the
// bounding set), so chown fails with EPERM as it does for rootless users.
func TestApplyChownErrors(t *testing.T) {
	requireRoot(t)
	if os.Getenv("ARCHIVE_TEST_NOCHOWN") != "" {
		f := file("f", "x")
		f.hdr.Uid = 4321
		_, err := Apply(context.Background(), os.Getenv("ARCHIVE_TEST_NOCHOWN"), bytes.NewReader(buildTar(t, f)),
			ApplyOptions{IgnoreChownErrors: os.Getenv("ARCHIVE_TEST_IGNORE") != ""})
		if err != nil {
			fmt.Println("APPLY-ERROR:", err, "CLASS:", errdefs.Class(err))
		} else {
			fmt.Println("APPLY-OK")
		}
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to drop CAP_CHOWN")
	}
	for _, tc := range []struct {
		ignore bool
		want   string
	}{{false, "APPLY-ERROR: apply layer tar to"}, {true, "APPLY-OK"}} {
		root := t.TempDir()
		cmd := exec.Command(setpriv, "--bounding-set", "-chown", "--inh-caps", "-chown", os.Args[0], "-test.run=^TestApplyChownErrors$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ARCHIVE_TEST_NOCHOWN="+root)
		if tc.ignore {
			cmd.Env = append(cmd.Env, "ARCHIVE_TEST_IGNORE=1")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("subprocess: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("IgnoreChownErrors=%v: output %s, want %q", tc.ignore, out, tc.want)
		}
		if !tc.ignore && !strings.Contains(string(out), "CLASS: not supported") {
			t.Errorf("chown EPERM not classed ErrNotSupported: %s", out)
		}
		if tc.ignore {
			if st := lstat(t, filepath.Join(root, "f")); st.Uid != 0 {
				t.Errorf("f owned by %d, want 0 (chown refused)", st.Uid)
			}
		}
	}
}

func TestApplyDirectoryTimesStick(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	d := dirEnt("d/")
	d.hdr.ModTime = time.Unix(1000000000, 0)
	data := buildTar(t, d, file("d/a", "a"), dirEnt("d/sub/"), file("d/sub/b", "b"), file("d/.wh.a", ""))
	if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(root, "d")); st.Mtim.Sec != 1000000000 {
		t.Errorf("d mtime %d, want 1000000000", st.Mtim.Sec)
	}
	if st := lstat(t, filepath.Join(root, "d/sub")); st.Mtim.Sec != testTime.Unix() {
		t.Errorf("d/sub mtime %d, want %d", st.Mtim.Sec, testTime.Unix())
	}
}

func TestApplyReadsToEndOfStream(t *testing.T) {
	data := append(buildTar(t, file("a", "a")), make([]byte, 10240)...)
	r := bytes.NewReader(data)
	if _, err := Apply(context.Background(), t.TempDir(), r, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left unread after the tar", r.Len())
	}
}

func TestApplyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(buildTar(t, file("a", "a"))), ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a canceled context = %v", err)
	}
}

func TestApplyMissingRoot(t *testing.T) {
	_, err := Apply(context.Background(), filepath.Join(t.TempDir(), "nope"), bytes.NewReader(nil), ApplyOptions{})
	if err == nil || errdefs.Class(err) == nil {
		t.Errorf("Apply into a missing root = %v, want a classed error", err)
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestApplyDoesNotLeakFds runs every code path that opens descriptors (parents, hard link
// targets, opaque dirs, errors) and checks that all are closed.
func TestApplyDoesNotLeakFds(t *testing.T) {
	requireRoot(t)
	before := openFds(t)
	for i := 0; i < 20; i++ {
		root := t.TempDir()
		good := buildTar(t, dirEnt("a/"), file("a/f", "f"), hardlink("b/h", "a/f"), symlink("l", "a"), file("l/g", "g"),
			file("a/.wh.f", ""), file("c/d/e", "e"), file("c/.wh..wh..opq", ""), dirEnt("c/"))
		if _, err := Apply(context.Background(), root, bytes.NewReader(good), ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		bad := buildTar(t, file("x/y", "y"), hardlink("z", "missing/target"))
		if _, err := Apply(context.Background(), root, bytes.NewReader(bad), ApplyOptions{WhiteoutFormat: WhiteoutOverlay}); err == nil {
			t.Fatal("hard link to a missing target succeeded")
		}
	}
	if after := openFds(t); after > before {
		t.Errorf("%d descriptors open after Apply, %d before", after, before)
	}
}
