package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func testMountCommands(t *testing.T, s *store) {
	t.Helper()
	// mount a layer twice, then unmount twice: only the last unmount reports.
	out := s.ok("mount", "l2")
	mnt := strings.TrimSuffix(out, "\n")
	if !filepath.IsAbs(mnt) || strings.Count(out, "\n") != 1 {
		t.Fatalf("mount printed %q", out)
	}
	var res []struct {
		ID         string `json:"id"`
		MountPoint string `json:"mountpoint"`
		Error      string `json:"error"`
	}
	decodeJSON(t, "mount -j", s.ok("mount", "-j", "l2"), &res)
	if len(res) != 1 || res[0].ID != "l2" || res[0].MountPoint != mnt || res[0].Error != "" {
		t.Fatalf("mount -j: %+v", res)
	}
	wantLines(t, "mounted", s.ok("mounted", "l2"), "l2 mounted")
	// "ID mounted" is printed in JSON mode too, before the JSON.
	wantLines(t, "mounted -j", s.ok("mounted", "-j", "l2"), "l2 mounted", `[{"id":"l2","error":""}]`)
	tree := s.ok("layers", "-t")
	if !strings.Contains(tree, "mount: "+mnt) {
		t.Fatalf("layers -t does not show the mount point:\n%s", tree)
	}
	if out := s.ok("unmount", "l2"); out != "" {
		t.Fatalf("first unmount printed %q", out)
	}
	wantLines(t, "umount", s.ok("umount", "l2"), "l2 mountpoint unmounted")
	if out := s.ok("mounted", "l2"); out != "" {
		t.Fatalf("mounted after unmount: %q", out)
	}

	// --force drops every reference.
	s.ok("mount", "ctr")
	s.ok("mount", "ctr")
	wantLines(t, "unmount -f", s.ok("unmount", "-f", "ctr"), "ctr mountpoint unmounted")
	s.ok("mount", "ctr")
	// As with mounted, the line comes before the JSON.
	wantLines(t, "unmount -j", s.ok("unmount", "-j", "ctr"), "ctr mountpoint unmounted", `[{"id":"ctr","error":""}]`)

	// An image mounts read-only with -r, and unmount falls back to the image.
	ro := strings.TrimSuffix(s.ok("mount", "-r", "img"), "\n")
	if ro == "" {
		t.Fatal("mount -r img printed nothing")
	}
	s.ok("mount", "--ro", "-l", "", "-o", "nosuid", "img")
	s.ok("unmount", "img")
	s.ok("unmount", "img")

	// Errors: a missing item prints an empty mount point line and the error on stderr.
	r := s.cli("mount", "no-such-layer")
	if r.code != 1 || r.stdout != "\n" || !strings.HasSuffix(r.stderr, " while mounting no-such-layer\n") {
		t.Fatalf("mount of a missing layer: %v", r)
	}
	r = s.cli("mount", "-j", "no-such-layer")
	if r.code != 1 || r.stderr != "" || !strings.HasPrefix(r.stdout, `[{"id":"no-such-layer","mountpoint":"","error":"`) {
		t.Fatalf("mount -j of a missing layer: %v", r)
	}
	r = s.cli("unmount", "no-such-layer")
	if r.code != 1 || r.stdout != "" || !strings.HasSuffix(r.stderr, " while unmounting no-such-layer\n") {
		t.Fatalf("unmount of a missing layer: %v", r)
	}
	r = s.cli("mounted", "no-such-layer")
	if r.code != 1 || r.stdout != "" || !strings.HasSuffix(r.stderr, " checking if no-such-layer is mounted\n") {
		t.Fatalf("mounted of a missing layer: %v", r)
	}

	// copy: from the host into a layer, and from a layer into another.
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	writeFile(t, src, "top.txt", []byte("top"))
	writeFile(t, filepath.Join(src, "sub"), "deep.txt", []byte("deep"))
	os.Symlink("top.txt", filepath.Join(src, "link"))
	file := writeFile(t, dir, "single", []byte("single"))
	if out := s.ok("copy", src, "l2:/copied"); out != "" {
		t.Fatalf("copy printed %q", out)
	}
	s.ok("copy", "-o", "1000:1001", file, "l2:/dest/")
	s.ok("copy", "l2:/copied/sub", "imported:/fromlayer")
	mnt = strings.TrimSuffix(s.ok("mount", "l2"), "\n")
	for name, want := range map[string]string{"copied/top.txt": "top", "copied/sub/deep.txt": "deep", "dest/single": "single"} {
		if b, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || string(b) != want {
			t.Errorf("after copy, %s = %q, %v; want %q", name, b, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(mnt, "copied/link")); err != nil || target != "top.txt" {
		t.Errorf("copied symlink: %q %v", target, err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "dest/single")); err != nil || !ownedBy(st, 1000, 1001) {
		t.Errorf("copy --chown: %v %v", st, err)
	}
	s.ok("unmount", "l2")
	mnt = strings.TrimSuffix(s.ok("mount", "imported"), "\n")
	if b, err := os.ReadFile(filepath.Join(mnt, "fromlayer/deep.txt")); err != nil || string(b) != "deep" {
		t.Errorf("copy between layers: %q %v", b, err)
	}
	s.ok("unmount", "imported")
	s.fails(1, "bad UID", "copy", "-o", "root", file, "l2:/x")
	s.fails(1, "layer not known", "copy", file, "no-such-layer:/x")
	if out := s.ok("mounted", "l2", "imported"); out != "" {
		t.Fatalf("copy left layers mounted: %q", out)
	}
}

func ownedBy(st os.FileInfo, uid, gid uint32) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && sys.Uid == uid && sys.Gid == gid
}
