package testfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func TestBtrfsMountAndTeardown(t *testing.T) {
	if err := checkRoot("btrfs"); err != nil {
		t.Skip(err)
	}
	mnt, cleanup, err := NewBtrfs()
	if errors.Is(err, ErrPrerequisite) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.BTRFS_SUPER_MAGIC {
		t.Errorf("%s: statfs type %#x, want btrfs", mnt, st.Type)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A mount left inside (a driver home whose Cleanup never ran) must not block teardown.
	inner := filepath.Join(mnt, "home")
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(inner, inner, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(filepath.Dir(mnt), "btrfs.img")
	dev, err := run("losetup", "--noheadings", "--output", "NAME", "--associated", image)
	if err != nil || dev == "" {
		t.Fatalf("no loop device backs %s: %q %v", image, dev, err)
	}

	if err := cleanup(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if mounted, _ := mountinfo.Mounted(mnt); mounted {
		t.Errorf("%s still mounted after cleanup", mnt)
	}
	if _, err := os.Stat(filepath.Dir(mnt)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s left behind: %v", filepath.Dir(mnt), err)
	}
	out, err := run("losetup", "--noheadings", "--output", "NAME,BACK-FILE", "--list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, image) || strings.Contains(out, dev+" ") {
		t.Errorf("loop device %s still attached: %s", dev, out)
	}
}

func TestBtrfsHelperRegistersCleanup(t *testing.T) {
	var mnt string
	t.Run("user", func(t *testing.T) {
		mnt = Btrfs(t)
		if mounted, err := mountinfo.Mounted(mnt); err != nil || !mounted {
			t.Fatalf("%s not mounted: %v", mnt, err)
		}
	})
	if mnt == "" {
		t.Skip("btrfs helper skipped")
	}
	if mounted, _ := mountinfo.Mounted(mnt); mounted {
		t.Errorf("%s still mounted after the subtest's cleanup", mnt)
	}
}

// TestZFSConcurrentPools makes two pools at once (two users of one daemon) and checks that
// teardown removes both and leaves no daemon that testfs started and nobody uses.
func TestZFSConcurrentPools(t *testing.T) {
	if err := checkRoot("zfs"); err != nil {
		t.Skip(err)
	}
	daemonBefore := len(zfsFusePIDs()) > 0

	type pool struct {
		ds, mnt string
		cleanup func() error
	}
	pools := make([]pool, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range pools {
		wg.Go(func() {
			p := &pools[i]
			p.ds, p.mnt, p.cleanup, errs[i] = NewZFS()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, ErrPrerequisite) && os.Getenv("CI") != "true" {
			t.Skip(err)
		}
	}
	for i, err := range errs {
		if err != nil {
			for _, p := range pools {
				if p.cleanup != nil {
					p.cleanup()
				}
			}
			t.Fatalf("pool %d: %v", i, err)
		}
	}
	if pools[0].ds == pools[1].ds {
		t.Fatalf("two pools share the name %s", pools[0].ds)
	}
	for _, p := range pools {
		if mounted, err := mountinfo.Mounted(p.mnt); err != nil || !mounted {
			t.Errorf("pool %s not mounted at %s: %v", p.ds, p.mnt, err)
		}
		if err := os.WriteFile(filepath.Join(p.mnt, "f"), []byte("x"), 0o644); err != nil {
			t.Errorf("write into pool %s: %v", p.ds, err)
		}
	}
	for _, p := range pools {
		if err := p.cleanup(); err != nil {
			t.Errorf("cleanup of %s: %v", p.ds, err)
		}
		if _, err := run("zpool", "list", "-H", p.ds); err == nil {
			t.Errorf("pool %s survives cleanup", p.ds)
		}
		if _, err := os.Stat(filepath.Dir(p.mnt)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temp dir of %s left behind: %v", p.ds, err)
		}
	}

	if KernelZFS() || daemonBefore {
		return
	}
	// Nobody else holding the users lock means the daemon testfs started must be gone.
	last, err := lockFile("users", unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		t.Log("another process uses zfs-fuse; not checking that the daemon stopped")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if pids := zfsFusePIDs(); len(pids) > 0 {
		t.Errorf("zfs-fuse %v still running after its last user left", pids)
	}
}
