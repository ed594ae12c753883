package zfsdriver_test

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
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit/drivertest"
	"github.com/pluggable-storage/storage/plugins/zfs/zfsdriver"
)

// newDriver initializes an in-process driver on a fresh graph root with the given options and
// registers its Cleanup.
func newDriver(t *testing.T, root string, options ...string) *zfsdriver.Driver {
	t.Helper()
	d := zfsdriver.New()
	drivertest.Init(t, d, pluginapi.InitOptions{Home: homeOf(root), GraphRoot: root, Options: options})
	return d
}

func TestRemoveDestroysCloneAndOriginSnapshot(t *testing.T) {
	fsname := testDataset(t, "clones")
	d := newDriver(t, testRoot(t), "zfs.fsname="+fsname)
	ctx := t.Context()
	for _, c := range []struct{ id, parent string }{{"base", ""}, {"child", "base"}, {"grandchild", "child"}} {
		if err := d.Create(ctx, c.id, c.parent, pluginapi.CreateOpts{}); err != nil {
			t.Fatalf("create %s: %v", c.id, err)
		}
	}
	origin := zfs(t, "get", "-H", "-o", "value", "origin", fsname+"/child")
	if !strings.HasPrefix(origin, fsname+"/base@") {
		t.Fatalf("child's origin is %q, want a snapshot of %s/base", origin, fsname)
	}
	for _, prop := range []string{"mountpoint", "canmount"} {
		if v := zfs(t, "get", "-H", "-o", "value", prop, fsname+"/child"); v != map[string]string{"mountpoint": "legacy", "canmount": "noauto"}[prop] {
			t.Errorf("child's %s is %q", prop, v)
		}
	}

	// A parent whose snapshot has a clone cannot go: that is the store's business, but the
	// driver must say so with ErrInUse and leave everything in place.
	err := d.Remove(ctx, "child")
	if !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("Remove of a layer with a child: %v, want ErrInUse", err)
	}
	if !datasetExists(t, fsname+"/grandchild") || !datasetExists(t, origin) {
		t.Fatal("a refused Remove destroyed something")
	}

	if err := d.Remove(ctx, "grandchild"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, "child"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{fsname + "/child", origin} {
		if datasetExists(t, name) {
			t.Errorf("%s survives Remove of child", name)
		}
	}
	if snaps := zfs(t, "list", "-H", "-t", "snapshot", "-o", "name", "-r", fsname); snaps != "" {
		t.Errorf("snapshots left under %s: %s", fsname, snaps)
	}
	ids, err := d.ListLayers(ctx)
	if err != nil || !slices.Equal(ids, []string{"base"}) {
		t.Fatalf("ListLayers = %q, %v; want [base]", ids, err)
	}
}

func TestQuotaEDQUOT(t *testing.T) {
	fsname := testDataset(t, "quota")
	d := newDriver(t, testRoot(t), "zfs.fsname="+fsname)
	ctx := t.Context()
	if err := d.Create(ctx, "q", "", pluginapi.CreateOpts{StorageOpt: map[string]string{"size": "8M"}}); err != nil {
		t.Fatal(err)
	}
	if q := zfs(t, "get", "-H", "-p", "-o", "value", "quota", fsname+"/q"); q != "8388608" {
		t.Errorf("quota property %q, want 8388608", q)
	}
	root, err := d.Get(ctx, "q", pluginapi.MountOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Put(ctx, "q")
	err = drivertest.FillFile(filepath.Join(root, "big"), 16<<20)
	if !errors.Is(err, unix.EDQUOT) {
		t.Fatalf("writing 16 MiB under an 8M quota: %v, want EDQUOT", err)
	}

	err = d.Create(ctx, "bad", "", pluginapi.CreateOpts{StorageOpt: map[string]string{"size": "lots"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || datasetExists(t, fsname+"/bad") {
		t.Fatalf("Create with size=lots: %v, want ErrInvalidArgument and no dataset", err)
	}
}

// TestMissingZFSCommand runs the real plugin with a PATH that has no zfs: Init must fail with
// ErrNotSupported saying so, across the process boundary.
func TestMissingZFSCommand(t *testing.T) {
	exe := buildPlugin(t)
	t.Setenv("PATH", t.TempDir())
	c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: "zfs", Path: exe})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root := t.TempDir()
	_, err = c.Init(t.Context(), pluginapi.InitOptions{Home: homeOf(root), GraphRoot: root})
	if !errors.Is(err, errdefs.ErrNotSupported) || !strings.Contains(err.Error(), "zfs command not found") {
		t.Fatalf("Init without zfs in PATH: %v, want ErrNotSupported saying the zfs command is missing", err)
	}
}

// TestDefaultFsname: without zfs.fsname, layers go under the dataset mounted where the graph root
// is; a graph root not on ZFS is refused with ErrNotSupported naming the file system.
func TestDefaultFsname(t *testing.T) {
	pool, _ := testPool(t)
	d := newDriver(t, testRoot(t))
	ctx := t.Context()
	if err := d.Create(ctx, "default-fsname", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	defer d.Remove(ctx, "default-fsname")
	if !datasetExists(t, pool+"/default-fsname") {
		t.Fatalf("layer not created as %s/default-fsname", pool)
	}
	md, err := d.Metadata(ctx, "default-fsname")
	if err != nil || md["Dataset"] != pool+"/default-fsname" {
		t.Fatalf("Metadata = %v, %v", md, err)
	}

	notZFS := t.TempDir()
	_, err = zfsdriver.New().Init(ctx, pluginapi.InitOptions{Home: homeOf(notZFS), GraphRoot: notZFS})
	if !errors.Is(err, errdefs.ErrNotSupported) || !strings.Contains(err.Error(), "not on zfs") {
		t.Fatalf("Init on a graph root not on ZFS: %v, want ErrNotSupported saying not on zfs", err)
	}
	_, err = zfsdriver.New().Init(ctx, pluginapi.InitOptions{Home: homeOf(notZFS), GraphRoot: notZFS, Options: []string{"zfs.fsname=" + pool + "/no-such-dataset"}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no-such-dataset") {
		t.Fatalf("Init with a missing zfs.fsname: %v, want ErrInvalidArgument naming it", err)
	}
}

// TestMounts: Get honours ReadOnly and zfs.mountopt; Put unmounts; a diff of an unmounted layer
// leaves it unmounted, and of a mounted one leaves it mounted.
func TestMounts(t *testing.T) {
	fsname := testDataset(t, "mounts")
	d := newDriver(t, testRoot(t), "zfs.fsname="+fsname, "zfs.mountopt=nodev")
	ctx := t.Context()
	if err := d.Create(ctx, "m", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	p, err := d.Get(ctx, "m", pluginapi.MountOpts{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	m := mountOf(t, p)
	if m == nil {
		t.Fatalf("%s not mounted after Get", p)
	}
	if !slices.Contains(strings.Split(m.Options, ","), "ro") || !slices.Contains(strings.Split(m.Options, ","), "nodev") {
		t.Errorf("mount options %q, want ro and nodev", m.Options)
	}
	if err := os.WriteFile(filepath.Join(p, "f"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into a read-only Get: %v, want EROFS", err)
	}
	if err := d.Put(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if mountOf(t, p) != nil {
		t.Fatalf("%s still mounted after Put", p)
	}

	if _, err := d.Changes(ctx, "m", ""); err != nil {
		t.Fatal(err)
	}
	if mountOf(t, p) != nil {
		t.Errorf("Changes left the unmounted layer mounted")
	}
	if _, err := d.Get(ctx, "m", pluginapi.MountOpts{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DiffSize(ctx, "m", ""); err != nil {
		t.Fatal(err)
	}
	if mountOf(t, p) == nil {
		t.Errorf("DiffSize unmounted a layer mounted by Get")
	}
	if err := d.Put(ctx, "m"); err != nil {
		t.Fatal(err)
	}
}

func mountOf(t *testing.T, p string) *mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(p))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		return nil
	}
	return ms[0]
}

func TestOptions(t *testing.T) {
	root := t.TempDir()
	for _, opt := range []string{"zfs.no_such_option=1", "zfs.size=10G", "zfs.imagestore=/x", "mountopt", "zfs.fsname=", "zfs.fsname=pool@snap"} {
		t.Run(opt, func(t *testing.T) {
			_, err := zfsdriver.New().Init(t.Context(), pluginapi.InitOptions{Home: homeOf(root), GraphRoot: root, Options: []string{opt}})
			key, _, _ := strings.Cut(opt, "=")
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), key) {
				t.Fatalf("Init with %q: %v, want ErrInvalidArgument naming %s", opt, err, key)
			}
		})
	}
}
