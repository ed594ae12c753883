package btrfsdriver

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/internal/testfs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
	"github.com/pluggable-storage/storage/pluginapi/driverkit/drivertest"
)

// newTestDriver initializes a driver on a fresh graph root inside a new btrfs and registers its
// Cleanup.
func newTestDriver(t *testing.T, options ...string) (*Driver, string) {
	t.Helper()
	mnt := testfs.Btrfs(t)
	home := filepath.Join(mnt, "root", Name)
	d := New()
	drivertest.Init(t, d, pluginapi.InitOptions{Home: home, GraphRoot: filepath.Dir(home), Options: options})
	return d, home
}

func TestRemoveDeletesNestedSubvolumes(t *testing.T) {
	d, _ := newTestDriver(t)
	ctx := t.Context()
	if err := d.Create(ctx, "base", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "ctr", "base", pluginapi.CreateOpts{ReadWrite: true}); err != nil {
		t.Fatal(err)
	}
	root, err := d.Get(ctx, "ctr", pluginapi.MountOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// A container making subvolumes inside its layer: one nested two deep, with a plain
	// directory and a file in between.
	if err := os.MkdirAll(filepath.Join(root, "var", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"var/lib/sub1", "var/lib/sub1/sub2", "sub3"} {
		if err := subvolCreate(filepath.Join(root, filepath.Dir(p)), filepath.Base(p)); err != nil {
			t.Fatalf("make nested subvolume %s: %v", p, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/sub1/sub2/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "var/lib/sub1/sub2"), &st); err != nil || st.Ino != firstFreeObjectID {
		t.Fatalf("sub2 is not a subvolume root (ino %d, %v)", st.Ino, err)
	}
	if err := d.Put(ctx, "ctr"); err != nil {
		t.Fatal(err)
	}

	if err := d.Remove(ctx, "ctr"); err != nil {
		t.Fatalf("remove layer holding nested subvolumes: %v", err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists after Remove: %v", root, err)
	}
	ids, err := d.ListLayers(ctx)
	if err != nil || !slices.Equal(ids, []string{"base"}) {
		t.Fatalf("ListLayers = %q, %v; want [base]", ids, err)
	}
}

func TestInitRefusesHomeNotOnBtrfs(t *testing.T) {
	dir := t.TempDir()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Type == unix.BTRFS_SUPER_MAGIC {
		t.Skipf("%s is on btrfs; cannot test the refusal", dir)
	}
	want := "found file system type"
	if name, ok := driverkit.FSName(int64(sfs.Type)); ok {
		want = "found " + name
	}
	home := filepath.Join(dir, "graph", Name)
	_, err := New().Init(t.Context(), pluginapi.InitOptions{Home: home})
	if !errors.Is(err, errdefs.ErrNotSupported) {
		t.Fatalf("Init on %s: %v, want ErrNotSupported", dir, err)
	}
	for _, s := range []string{"not on btrfs", want, home} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "graph")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Init created directories: %v", err)
	}
}

func TestInitBindMountsHomeOnce(t *testing.T) {
	d, home := newTestDriver(t)
	countMounts := func() int {
		m, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(home))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	if n := countMounts(); n != 1 {
		t.Fatalf("%d mounts on %s after Init, want 1", n, home)
	}
	// A restarted plugin inits again: the home must not get a second mount.
	d2 := New()
	if _, err := d2.Init(t.Context(), pluginapi.InitOptions{Home: home}); err != nil {
		t.Fatal(err)
	}
	if n := countMounts(); n != 1 {
		t.Fatalf("%d mounts on %s after a second Init, want 1", n, home)
	}
	m, _ := mountinfo.GetMounts(mountinfo.SingleEntryFilter(home))
	if len(m) == 1 && strings.Contains(m[0].Optional, "shared") {
		t.Errorf("home mount is not private: %q", m[0].Optional)
	}
	if err := d2.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countMounts(); n != 0 {
		t.Fatalf("%d mounts on %s after Cleanup, want 0", n, home)
	}
	_ = d
}

func TestQuota(t *testing.T) {
	d, home := newTestDriver(t, "btrfs.min_space=8M")
	ctx := t.Context()
	if err := d.Create(ctx, "base", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	err := d.Create(ctx, "tiny", "base", pluginapi.CreateOpts{StorageOpt: map[string]string{"size": "4M"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "min_space") {
		t.Fatalf("size under min_space: %v, want ErrInvalidArgument naming min_space", err)
	}
	if _, err := os.Lstat(filepath.Join(home, "subvolumes", "tiny")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused Create left a subvolume: %v", err)
	}
	if err := d.Create(ctx, "limited", "base", pluginapi.CreateOpts{StorageOpt: map[string]string{"size": "16M"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "inherits", "limited", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"limited", "inherits"} {
		md, err := d.Metadata(ctx, id)
		if err != nil || md["Size"] != "16777216" {
			t.Errorf("Metadata(%s) = %v, %v; want Size 16777216", id, md, err)
		}
		root, err := d.Get(ctx, id, pluginapi.MountOpts{})
		if err != nil {
			t.Fatal(err)
		}
		err = drivertest.FillFile(filepath.Join(root, "big"), 32<<20)
		if !errors.Is(err, unix.EDQUOT) {
			t.Errorf("writing 32 MiB into %s with a 16M quota: %v, want EDQUOT", id, err)
		}
	}
	if err := d.Remove(ctx, "inherits"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, "quotas", "inherits")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("quota record survives Remove: %v", err)
	}
}

func TestOptions(t *testing.T) {
	cases := []struct {
		opt     string
		wantErr bool
		want    options
	}{
		{"btrfs.min_space=10M", false, options{minSpace: 10 << 20}},
		{".min_space=1g", false, options{minSpace: 1 << 30}},
		{"size=512KiB", false, options{defaultSize: 512 << 10}},
		{"btrfs.size=1.5m", false, options{defaultSize: 3 << 19}},
		{"btrfs.mountopt=nodev", true, options{}},
		{"btrfs.imagestore=/x", true, options{}},
		{"imagestore=/x", true, options{}},
		{"btrfs.no_such_option=1", true, options{}},
		{"btrfs.min_space=lots", true, options{}},
		{"btrfs.min_space", true, options{}},
	}
	for _, c := range cases {
		t.Run(c.opt, func(t *testing.T) {
			o, err := parseOptions([]string{c.opt})
			if c.wantErr {
				key, _, _ := strings.Cut(c.opt, "=")
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), key) {
					t.Fatalf("parseOptions(%q) = %v, want ErrInvalidArgument naming %s", c.opt, err, key)
				}
				return
			}
			if err != nil || o != c.want {
				t.Fatalf("parseOptions(%q) = %+v, %v; want %+v", c.opt, o, err, c.want)
			}
		})
	}
}
