package vfsdriver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit/drivertest"
	"github.com/pluggable-storage/storage/plugins/vfs/vfsdriver"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown, device nodes, trusted.* xattrs")
	}
}

// newDriver returns an initialized driver whose home is <tmp>/vfs.
func newDriver(t *testing.T, options ...string) (*vfsdriver.Driver, string) {
	t.Helper()
	root := t.TempDir()
	d := vfsdriver.New()
	home := filepath.Join(root, "vfs")
	drivertest.Init(t, d, pluginapi.InitOptions{Home: home, RunHome: filepath.Join(t.TempDir(), "vfs"), GraphRoot: root, Options: options})
	return d, home
}

func mustGet(t *testing.T, d *vfsdriver.Driver, id string) string {
	t.Helper()
	p, err := d.Get(t.Context(), id, pluginapi.MountOpts{})
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return p
}

// describe records everything a copy must preserve about every path under root: type, mode
// bits, owner, size, mtime, device number, link target, xattrs and content hash.
func describe(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d mtime=%d.%09d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d sha=%x", st.Size, sha256.Sum256(b))
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			desc += " target=" + target
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		sz, err := unix.Llistxattr(p, nil)
		if err != nil {
			return err
		}
		if sz > 0 {
			buf := make([]byte, sz)
			n, err := unix.Llistxattr(p, buf)
			if err != nil {
				return err
			}
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			slices.Sort(names)
			for _, name := range names {
				val := make([]byte, 1024)
				m, err := unix.Lgetxattr(p, name, val)
				if err != nil {
					return err
				}
				desc += fmt.Sprintf(" %s=%q", name, val[:m])
			}
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("describe %s: %v", root, err)
	}
	return out
}

// populate fills dir with one of every kind of entry a layer can hold.
func populate(t *testing.T, dir string) {
	t.Helper()
	j := func(name string) string { return filepath.Join(dir, name) }
	steps := []struct {
		what string
		do   func() error
	}{
		{"file", func() error { return os.WriteFile(j("file"), []byte("content"), 0o640) }},
		{"file owner", func() error { return os.Lchown(j("file"), 1000, 1001) }},
		{"file xattrs", func() error {
			return errors.Join(unix.Lsetxattr(j("file"), "user.test", []byte("u"), 0), unix.Lsetxattr(j("file"), "trusted.test", []byte("t"), 0))
		}},
		{"setuid file", func() error {
			return errors.Join(os.WriteFile(j("suid"), []byte("#!/bin/sh\n"), 0o755), unix.Chmod(j("suid"), 0o4755))
		}},
		{"empty file", func() error { return os.WriteFile(j("empty"), nil, 0o600) }},
		{"hard links", func() error {
			return errors.Join(os.WriteFile(j("hl-a"), []byte("linked"), 0o644), os.Link(j("hl-a"), j("hl-b")))
		}},
		{"symlink", func() error { return os.Symlink("hl-a", j("sym")) }},
		{"symlink owner", func() error { return os.Lchown(j("sym"), 5, 6) }},
		{"dangling symlink", func() error { return os.Symlink("/nowhere/at/all", j("dangling")) }},
		{"char device", func() error { return unix.Mknod(j("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) }},
		{"block device", func() error { return unix.Mknod(j("loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 200))) }},
		{"fifo", func() error { return unix.Mkfifo(j("fifo"), 0o620) }},
		{"socket", func() error { return unix.Mknod(j("sock"), unix.S_IFSOCK|0o755, 0) }},
		{"setgid dir", func() error {
			return errors.Join(os.Mkdir(j("sgid"), 0o700), unix.Chmod(j("sgid"), 0o2750), os.Lchown(j("sgid"), 7, 8),
				unix.Lsetxattr(j("sgid"), "user.dir", []byte("d"), 0))
		}},
		{"file in setgid dir", func() error { return os.WriteFile(filepath.Join(j("sgid"), "inner"), []byte("in"), 0o644) }},
		{"read-only dir", func() error {
			return errors.Join(os.Mkdir(j("ro"), 0o755), os.WriteFile(filepath.Join(j("ro"), "f"), []byte("ro"), 0o400), os.Chmod(j("ro"), 0o500))
		}},
		{"times", func() error {
			for _, name := range []string{"file", "sym", "sgid", "ro", "null"} {
				ts := []unix.Timespec{{Sec: 1600000000, Nsec: 123456789}, {Sec: 1500000000, Nsec: 987654321}}
				if err := unix.UtimesNanoAt(unix.AT_FDCWD, j(name), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("populate %s: %v", s.what, err)
		}
	}
}

// TestCreateCopiesEverything: a child layer is an exact copy of its parent: types, modes
// (setuid, setgid), owners, times, xattrs, devices, symlinks and hard links.
func TestCreateCopiesEverything(t *testing.T) {
	needRoot(t)
	d, _ := newDriver(t)
	ctx := t.Context()
	if err := d.Create(ctx, "parent", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	pdir := mustGet(t, d, "parent")
	populate(t, pdir)
	if err := unix.Chmod(pdir, 0o751); err != nil {
		t.Fatal(err)
	}
	want := describe(t, pdir)
	if err := d.Create(ctx, "child", "parent", pluginapi.CreateOpts{}); err != nil {
		t.Fatalf("create child: %v", err)
	}
	cdir := mustGet(t, d, "child")
	got := describe(t, cdir)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s:\n got  %s\n want %s", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: only in the copy", p)
		}
	}
	a, errA := os.Lstat(filepath.Join(cdir, "hl-a"))
	b, errB := os.Lstat(filepath.Join(cdir, "hl-b"))
	pa, errP := os.Lstat(filepath.Join(pdir, "hl-a"))
	if err := errors.Join(errA, errB, errP); err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Error("hl-a and hl-b are no longer hard links of each other in the copy")
	}
	if os.SameFile(a, pa) {
		t.Error("the copy's hl-a is a hard link to the parent's: layers must not share inodes")
	}
}

// TestCreateKeepsSparseFilesSparse: a child of a layer holding a 1 GiB file with 4 KiB of data
// does not allocate the holes.
func TestCreateKeepsSparseFilesSparse(t *testing.T) {
	needRoot(t)
	d, _ := newDriver(t)
	ctx := t.Context()
	if err := d.Create(ctx, "sparse-parent", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(mustGet(t, d, "sparse-parent"), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("d"), 4096)
	_, err = f.WriteAt(data, 512<<20)
	if err = errors.Join(err, f.Truncate(1<<30), f.Close()); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "sparse-child", "sparse-parent", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(mustGet(t, d, "sparse-child"), "sparse")
	var st unix.Stat_t
	if err := unix.Stat(c, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 1<<30 {
		t.Fatalf("copy has size %d, want %d", st.Size, 1<<30)
	}
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("copy of a sparse file allocates %d bytes", st.Blocks*512)
	}
	got := make([]byte, 4096)
	cf, err := os.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	if _, err := cf.ReadAt(got, 512<<20); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data at 512 MiB: %q..., %v", got[:8], err)
	}
}

// TestFailedCreateLeavesNothing: a Create that fails (cancelled mid-way, missing parent, bad
// storage option) leaves neither dir/<id> nor anything under staging/.
func TestFailedCreateLeavesNothing(t *testing.T) {
	needRoot(t)
	d, home := newDriver(t)
	ctx := t.Context()
	if err := d.Create(ctx, "parent", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	populate(t, mustGet(t, d, "parent"))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name      string
		ctx       context.Context
		parent    string
		opts      pluginapi.CreateOpts
		wantClass error // nil: any error
	}{
		{"Cancelled", cancelled, "parent", pluginapi.CreateOpts{}, nil},
		{"MissingParent", ctx, "no-parent", pluginapi.CreateOpts{}, errdefs.ErrNotFound},
		{"SizeOption", ctx, "parent", pluginapi.CreateOpts{StorageOpt: map[string]string{"size": "1G"}}, errdefs.ErrNotSupported},
		{"UnknownStorageOption", ctx, "parent", pluginapi.CreateOpts{StorageOpt: map[string]string{"bogus": "1"}}, errdefs.ErrInvalidArgument},
		{"BadID", ctx, "parent", pluginapi.CreateOpts{}, errdefs.ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "failed-" + c.name
			if c.name == "BadID" {
				id = "../escape"
			}
			err := d.Create(c.ctx, id, c.parent, c.opts)
			if err == nil || (c.wantClass != nil && !errors.Is(err, c.wantClass)) {
				t.Fatalf("Create = %v, want an error of class %v", err, c.wantClass)
			}
			if _, err := os.Lstat(filepath.Join(home, "dir", id)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("dir/%s after a failed Create: %v", id, err)
			}
			if entries, err := os.ReadDir(filepath.Join(home, "staging")); err != nil || len(entries) != 0 {
				t.Fatalf("staging/ holds %v (%v) after a failed Create", entries, err)
			}
		})
	}
}

// TestInitSweepsDeadStaging: holder directories left by a dead process (lock free) are deleted by
// Init and Cleanup; one whose lock is held (a live call) is kept.
func TestInitSweepsDeadStaging(t *testing.T) {
	needRoot(t)
	d, home := newDriver(t)
	staging := filepath.Join(home, "staging")
	dead := filepath.Join(staging, "create-dead")
	live := filepath.Join(staging, "create-live")
	for _, p := range []string{filepath.Join(dead, "layer", "sub"), filepath.Join(live, "layer")} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dead, "layer"), 0o555); err != nil {
		t.Fatal(err)
	}
	lock, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	restarted := vfsdriver.New()
	if _, err := restarted.Init(t.Context(), pluginapi.InitOptions{Home: home}); err != nil {
		t.Fatalf("init: %v", err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dead holder after Init: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(live, "layer")); err != nil {
		t.Fatalf("live holder after Init: %v", err)
	}
	if err := lock.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Cleanup(t.Context()); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if entries, err := os.ReadDir(staging); err != nil || len(entries) != 0 {
		t.Fatalf("staging/ holds %v (%v) after the owner released it and Cleanup ran", entries, err)
	}
}

// TestConcurrentCreateOfOneIDHasOneWinner: of several Creates of the same ID racing, exactly one
// succeeds and the others get ErrAlreadyExists (the final rename never replaces).
func TestConcurrentCreateOfOneIDHasOneWinner(t *testing.T) {
	needRoot(t)
	d, home := newDriver(t)
	ctx := t.Context()
	for _, parent := range []string{"", "racer-parent"} {
		t.Run("parent="+parent, func(t *testing.T) {
			if parent != "" {
				if err := d.Create(ctx, parent, "", pluginapi.CreateOpts{}); err != nil {
					t.Fatal(err)
				}
				populate(t, mustGet(t, d, parent))
			}
			id := "racer-on-" + parent
			const n = 6
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = d.Create(ctx, id, parent, pluginapi.CreateOpts{}) })
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, errdefs.ErrAlreadyExists):
					t.Errorf("a losing Create failed with %v, want ErrAlreadyExists", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d Creates of %s succeeded, want 1", wins, id)
			}
			if entries, err := os.ReadDir(filepath.Join(home, "staging")); err != nil || len(entries) != 0 {
				t.Fatalf("staging/ holds %v (%v) after the race", entries, err)
			}
		})
	}
}

// TestOptions: the keys vfs knows, with any prefix and in any case, and the errors naming the
// key for the others.
func TestOptions(t *testing.T) {
	needRoot(t)
	cases := []struct {
		opt       string
		wantErr   bool
		wantInErr string
	}{
		{opt: "vfs.ignore_chown_errors=true"},
		{opt: ".ignore_chown_errors=false"},
		{opt: "VFS.Ignore_Chown_Errors=1"},
		{opt: "vfs.imagestore=/var/lib/elsewhere"},
		{opt: ".imagestore=/a,/b"},
		{opt: "vfs.mountopt=nodev", wantErr: true, wantInErr: "vfs.mountopt"},
		{opt: ".mountopt=nodev", wantErr: true, wantInErr: ".mountopt"},
		{opt: "vfs.ignore_chown_errors=maybe", wantErr: true, wantInErr: "ignore_chown_errors"},
		{opt: "vfs.size=10G", wantErr: true, wantInErr: "vfs.size"},
		{opt: "overlay.mount_program=/bin/true", wantErr: true, wantInErr: "overlay.mount_program"},
		{opt: "ignore_chown_errors", wantErr: true, wantInErr: "ignore_chown_errors"},
	}
	for _, c := range cases {
		t.Run(c.opt, func(t *testing.T) {
			d := vfsdriver.New()
			_, err := d.Init(t.Context(), pluginapi.InitOptions{Home: filepath.Join(t.TempDir(), "vfs"), Options: []string{c.opt}})
			if !c.wantErr {
				if err != nil {
					t.Fatalf("Init(%s): %v", c.opt, err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.wantInErr) {
				t.Fatalf("Init(%s) = %v, want ErrInvalidArgument naming %q", c.opt, err, c.wantInErr)
			}
		})
	}
}

// TestImageStore: a layer under <imagestore>/vfs/dir/<id> is found by Exists and Get and can be
// a parent, but is neither listed nor removed.
func TestImageStore(t *testing.T) {
	needRoot(t)
	store := t.TempDir()
	roLayer := filepath.Join(store, "vfs", "dir", "ro-layer")
	if err := os.MkdirAll(roLayer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(roLayer, "from-store"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := newDriver(t, "vfs.imagestore="+store)
	ctx := t.Context()
	if ok, err := d.Exists(ctx, "ro-layer"); err != nil || !ok {
		t.Fatalf("Exists(ro-layer) = %v, %v", ok, err)
	}
	if p := mustGet(t, d, "ro-layer"); p != roLayer {
		t.Fatalf("Get(ro-layer) = %s, want %s", p, roLayer)
	}
	if err := d.Create(ctx, "child", "ro-layer", pluginapi.CreateOpts{}); err != nil {
		t.Fatalf("create on a layer of the image store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mustGet(t, d, "child"), "from-store")); err != nil {
		t.Fatalf("child of the image-store layer: %v", err)
	}
	ids, err := d.ListLayers(ctx)
	if err != nil || !slices.Equal(ids, []string{"child"}) {
		t.Fatalf("ListLayers = %q, %v; want [child]", ids, err)
	}
	if err := d.Remove(ctx, "ro-layer"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(roLayer, "from-store")); err != nil {
		t.Fatalf("Remove touched the image store: %v", err)
	}
	status, err := d.Status(ctx)
	if err != nil || !slices.Contains(status, [2]string{"Image Stores", store}) {
		t.Fatalf("Status = %q, %v; want the image store listed", status, err)
	}
}

// TestGetMountOptions: "ro" is accepted (and ignored), any other mount option is ErrNotSupported.
func TestGetMountOptions(t *testing.T) {
	needRoot(t)
	d, _ := newDriver(t)
	ctx := t.Context()
	if err := d.Create(ctx, "l", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "l", pluginapi.MountOpts{Options: []string{"ro"}, ReadOnly: true}); err != nil {
		t.Fatalf("Get with ro: %v", err)
	}
	_, err := d.Get(ctx, "l", pluginapi.MountOpts{Options: []string{"nodev"}})
	if !errors.Is(err, errdefs.ErrNotSupported) || !strings.Contains(err.Error(), "nodev") {
		t.Fatalf("Get with nodev = %v, want ErrNotSupported naming it", err)
	}
}
