package driverkit

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func TestFSName(t *testing.T) {
	cases := []struct {
		magic  int64
		want   string
		wantOK bool
	}{
		{unix.EXT4_SUPER_MAGIC, "extfs", true},
		{unix.XFS_SUPER_MAGIC, "xfs", true},
		{unix.BTRFS_SUPER_MAGIC, "btrfs", true},
		{unix.TMPFS_MAGIC, "tmpfs", true},
		{unix.OVERLAYFS_SUPER_MAGIC, "overlayfs", true},
		{0x2FC12FC1, "zfs", true},
		{unix.PROC_SUPER_MAGIC, "", false},
		{0, "", false},
	}
	for _, c := range cases {
		if name, ok := FSName(c.magic); name != c.want || ok != c.wantOK {
			t.Errorf("FSName(%#x) = %q, %v; want %q, %v", c.magic, name, ok, c.want, c.wantOK)
		}
	}
}

// TestBackingFS compares BackingFS with statfs(2) on real paths: a temporary directory, /proc
// (a type FSName does not know) and a missing path.
func TestBackingFS(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	want, ok := FSName(int64(st.Type))
	if !ok {
		want = fmt.Sprintf("<unknown %#x>", st.Type)
	}
	if got, err := BackingFS(dir); err != nil || got != want {
		t.Errorf("BackingFS(%s) = %q, %v; want %q", dir, got, err, want)
	}

	if got, err := BackingFS("/proc"); err != nil || got != fmt.Sprintf("<unknown %#x>", unix.PROC_SUPER_MAGIC) {
		t.Errorf("BackingFS(/proc) = %q, %v; want <unknown %#x>", got, err, unix.PROC_SUPER_MAGIC)
	}
	if _, err := BackingFS(dir + "/missing"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("BackingFS of a missing path: %v, want ENOENT", err)
	}
}

// TestMakePrivateBind: a directory becomes one private bind mount of itself, and a second call
// (a restarted plugin's Init) does not stack another.
func TestMakePrivateBind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mount(2)")
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		for range mountsAt(t, dir) {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	for i := 1; i <= 2; i++ {
		if err := MakePrivateBind(dir); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		ms := mountsAt(t, dir)
		if len(ms) != 1 {
			t.Fatalf("after call %d: %d mounts at %s, want 1", i, len(ms), dir)
		}
		if strings.Contains(ms[0].Optional, "shared:") || strings.Contains(ms[0].Optional, "master:") {
			t.Fatalf("after call %d: mount at %s has propagation %q, want private", i, dir, ms[0].Optional)
		}
	}
	if err := MakePrivateBind(dir + "/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("MakePrivateBind of a missing directory: %v, want ErrNotExist", err)
	}
}

func mountsAt(t *testing.T, dir string) []*mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
