package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/overlay/overlaydriver"
)

// testEnv is one in-process driver on fresh roots.
type testEnv struct {
	d             *overlaydriver.Driver
	root, runRoot string
	home, runHome string
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("overlay tests need root (mounts, trusted xattrs)")
	}
}

// newEnv returns an initialized driver with fresh graph and run roots. Its cleanup removes every
// layer, runs the driver's Cleanup and fails the test if anything is still mounted under the
// roots.
func newEnv(t testing.TB, opts ...string) *testEnv {
	t.Helper()
	needRoot(t)
	e := &testEnv{root: t.TempDir(), runRoot: t.TempDir()}
	e.home = filepath.Join(e.root, overlaydriver.Name)
	e.runHome = filepath.Join(e.runRoot, overlaydriver.Name)
	t.Cleanup(func() { checkNoMounts(t, e.root, e.runRoot) })
	e.d = e.open(t, opts...)
	return e
}

// open starts another driver instance on e's roots; its Cleanup runs at the end of the test.
func (e *testEnv) open(t testing.TB, opts ...string) *overlaydriver.Driver {
	t.Helper()
	d := overlaydriver.New()
	if _, err := d.Init(context.Background(), e.initOptions(opts...)); err != nil {
		t.Fatalf("init overlay driver: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		ids, err := d.ListLayers(ctx)
		if err != nil {
			t.Errorf("list layers: %v", err)
		}
		for _, id := range ids {
			if err := d.Remove(ctx, id); err != nil {
				t.Errorf("remove layer %s: %v", id, err)
			}
		}
		if err := d.Cleanup(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return d
}

func (e *testEnv) initOptions(opts ...string) pluginapi.InitOptions {
	return pluginapi.InitOptions{Home: e.home, RunHome: e.runHome, GraphRoot: e.root, RunRoot: e.runRoot, Options: opts}
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t testing.TB, dir string) []*mountinfo.Info {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatalf("read mountinfo: %v", err)
	}
	return ms
}

// mountsAt lists the mounts stacked exactly at dir.
func mountsAt(t testing.TB, dir string) []*mountinfo.Info {
	t.Helper()
	var out []*mountinfo.Info
	for _, m := range mountsUnder(t, dir) {
		if m.Mountpoint == dir {
			out = append(out, m)
		}
	}
	return out
}

// checkNoMounts fails the test if something is mounted under dirs, and unmounts it so the temp
// dirs can be removed.
func checkNoMounts(t testing.TB, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		ms := mountsUnder(t, dir)
		slices.SortFunc(ms, func(a, b *mountinfo.Info) int { return len(b.Mountpoint) - len(a.Mountpoint) })
		for _, m := range ms {
			t.Errorf("still mounted at the end of the test: %s (%s)", m.Mountpoint, m.FSType)
			_ = unmountDetach(m.Mountpoint)
		}
	}
}

// tarEntry is one entry of a test tar: a regular file unless dir or a whiteout name.
type tarEntry struct {
	name    string
	content string
	dir     bool
}

func tarOf(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.content))}
		if e.dir {
			hdr = &tar.Header{Name: strings.TrimSuffix(e.name, "/") + "/", Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if !e.dir {
			if _, err := tw.Write([]byte(e.content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withMount mounts id, runs fn on its path and unmounts it.
func withMount(t testing.TB, d pluginapi.Driver, id string, opts pluginapi.MountOpts, fn func(root string)) {
	t.Helper()
	ctx := context.Background()
	root, err := d.Get(ctx, id, opts)
	if err != nil {
		t.Fatalf("get layer %s: %v", id, err)
	}
	defer func() {
		if err := d.Put(ctx, id); err != nil {
			t.Errorf("put layer %s: %v", id, err)
		}
	}()
	fn(root)
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}
