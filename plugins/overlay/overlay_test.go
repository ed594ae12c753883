package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/conformance"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/overlay/overlaydriver"
)

func unmountDetach(p string) error { return unix.Unmount(p, unix.MNT_DETACH) }

// buildChain creates n layers, each on the previous one, applying tarFor(i) to layer i when it
// returns a tar. It returns the IDs, base first.
func buildChain(t testing.TB, d pluginapi.Driver, prefix string, n int, tarFor func(i int) []byte) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	parent := ""
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		if err := d.Create(ctx, ids[i], parent, pluginapi.CreateOpts{}); err != nil {
			t.Fatalf("create layer %d of the chain: %v", i, err)
		}
		if tarFor != nil {
			if b := tarFor(i); b != nil {
				if _, err := d.ApplyDiff(ctx, ids[i], parent, bytes.NewReader(b)); err != nil {
					t.Fatalf("apply diff to layer %d of the chain: %v", i, err)
				}
			}
		}
		parent = ids[i]
	}
	return ids
}

// TestDeepChain300 stacks 300 layers, each applied from a tar: every 10th layer adds its own
// file, every layer rewrites "shared", layer 150 deletes layer 100's file and layer 200 deletes
// the directory "gone". The top mounts (read-write and read-only) and shows the right contents.
func TestDeepChain300(t *testing.T) {
	e := newEnv(t)
	const n = 300
	ids := buildChain(t, e.d, "deep", n, func(i int) []byte {
		entries := []tarEntry{{name: "shared", content: fmt.Sprintf("written by layer %d", i)}}
		if i%10 == 0 {
			entries = append(entries, tarEntry{name: fmt.Sprintf("files/layer-%d", i), content: fmt.Sprint(i)})
		}
		switch i {
		case 0:
			entries = append(entries, tarEntry{name: "gone", dir: true}, tarEntry{name: "gone/f", content: "x"})
		case 150:
			entries = append(entries, tarEntry{name: "files/.wh.layer-100"})
		case 200:
			entries = append(entries, tarEntry{name: ".wh.gone"})
		}
		return tarOf(t, entries...)
	})
	top := ids[n-1]
	for _, ro := range []bool{false, true} {
		withMount(t, e.d, top, pluginapi.MountOpts{ReadOnly: ro}, func(root string) {
			if got, want := readFile(t, filepath.Join(root, "shared")), fmt.Sprintf("written by layer %d", n-1); got != want {
				t.Errorf("read-only=%v: shared = %q, want %q", ro, got, want)
			}
			for i := 0; i < n; i += 10 {
				p := filepath.Join(root, "files", fmt.Sprintf("layer-%d", i))
				if i == 100 {
					if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("read-only=%v: deleted file of layer 100: %v, want not exist", ro, err)
					}
					continue
				}
				if got := readFile(t, p); got != fmt.Sprint(i) {
					t.Errorf("read-only=%v: file of layer %d = %q", ro, i, got)
				}
			}
			if _, err := os.Lstat(filepath.Join(root, "gone")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("read-only=%v: deleted directory: %v, want not exist", ro, err)
			}
		})
	}
	// The middle of the chain still sees its own state.
	withMount(t, e.d, ids[120], pluginapi.MountOpts{}, func(root string) {
		if got := readFile(t, filepath.Join(root, "files", "layer-100")); got != "100" {
			t.Errorf("layer 120: file of layer 100 = %q", got)
		}
	})
	lower, err := os.ReadFile(filepath.Join(e.home, top, "lower"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(strings.Split(string(lower), ":")); got != n-1 {
		t.Errorf("top layer's lower file names %d layers, want %d", got, n-1)
	}
}

// TestMaxDepth: a layer with 500 lowers mounts read-write and read-only; one with 501 cannot be
// created, and the error says why.
func TestMaxDepth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := buildChain(t, e.d, "max", 501, func(i int) []byte {
		if i == 0 {
			return tarOf(t, tarEntry{name: "base-file", content: "base"})
		}
		return nil
	})
	top := ids[len(ids)-1]
	for _, ro := range []bool{false, true} {
		withMount(t, e.d, top, pluginapi.MountOpts{ReadOnly: ro}, func(root string) {
			// The mount's mountinfo line (all 500 lowers) must stay parseable by the usual
			// line-based readers (64 KiB lines).
			if ms := mountsAt(t, root); len(ms) != 1 || ms[0].FSType != "overlay" {
				t.Errorf("read-only=%v: mounts at %s: %v, want one overlay", ro, root, ms)
			}
			if got := readFile(t, filepath.Join(root, "base-file")); got != "base" {
				t.Errorf("read-only=%v: base-file = %q", ro, got)
			}
			err := os.WriteFile(filepath.Join(root, "new"), nil, 0o644)
			if ro && !errors.Is(err, unix.EROFS) {
				t.Errorf("write into a read-only mount: %v, want EROFS", err)
			}
			if !ro && err != nil {
				t.Errorf("write into a read-write mount: %v", err)
			}
		})
	}
	err := e.d.Create(ctx, "too-deep", top, pluginapi.CreateOpts{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "501") {
		t.Fatalf("create a layer with 501 lowers: %v, want ErrInvalidArgument naming 501", err)
	}
	if ok, _ := e.d.Exists(ctx, "too-deep"); ok {
		t.Fatal("the rejected layer exists")
	}
}

// TestSelfHealing: deleting a layer's l/ link, its link file, both, or merged/ does not break
// Get of it or of its child, and the deleted pieces come back.
func TestSelfHealing(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, e *testEnv, parent, child string)
	}{
		{"ParentShortLink", func(t *testing.T, e *testEnv, parent, _ string) { removeT(t, shortLinkPath(t, e, parent)) }},
		{"ParentLinkFile", func(t *testing.T, e *testEnv, parent, _ string) { removeT(t, filepath.Join(e.home, parent, "link")) }},
		{"ChildLinkFileAndShortLink", func(t *testing.T, e *testEnv, _, child string) {
			removeT(t, shortLinkPath(t, e, child))
			removeT(t, filepath.Join(e.home, child, "link"))
		}},
		{"ChildMerged", func(t *testing.T, e *testEnv, _, child string) { removeT(t, filepath.Join(e.home, child, "merged")) }},
		{"WholeLinkDir", func(t *testing.T, e *testEnv, _, _ string) {
			if err := os.RemoveAll(filepath.Join(e.home, "l")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(e.home, "l"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ids := buildChain(t, e.d, "heal", 3, func(i int) []byte {
				return tarOf(t, tarEntry{name: fmt.Sprintf("f%d", i), content: fmt.Sprint(i)})
			})
			parent, child := ids[1], ids[2]
			c.damage(t, e, parent, child)
			for _, id := range []string{child, parent} {
				withMount(t, e.d, id, pluginapi.MountOpts{}, func(root string) {
					if got := readFile(t, filepath.Join(root, "f0")); got != "0" {
						t.Errorf("layer %s: f0 = %q", id, got)
					}
				})
			}
			for _, id := range ids {
				checkLayout(t, e, id)
			}
		})
	}
}

func removeT(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func shortLinkPath(t *testing.T, e *testEnv, id string) string {
	t.Helper()
	short, err := os.ReadFile(filepath.Join(e.home, id, "link"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(e.home, "l", string(short))
}

// checkLayout checks layer id's SPEC-disk §1.7 layout: a 26-character link file without a
// newline naming an l/ symlink to ../<id>/diff, and the work and merged directories.
func checkLayout(t *testing.T, e *testEnv, id string) {
	t.Helper()
	short, err := os.ReadFile(filepath.Join(e.home, id, "link"))
	if err != nil {
		t.Errorf("layer %s: link file: %v", id, err)
		return
	}
	if len(short) != 26 || bytes.ContainsAny(short, "\n/") {
		t.Errorf("layer %s: link file holds %q, want 26 base32 characters", id, short)
	}
	target, err := os.Readlink(filepath.Join(e.home, "l", string(short)))
	if want := filepath.Join("..", id, "diff"); err != nil || target != want {
		t.Errorf("layer %s: l/%s -> %q, %v; want %q", id, short, target, err, want)
	}
	for _, sub := range []string{"work", "merged"} {
		if fi, err := os.Stat(filepath.Join(e.home, id, sub)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("layer %s: %s: %v, %v; want a 0700 directory", id, sub, fi, err)
		}
	}
}

// TestLayout checks the on-disk layout the established tools read: modes, lower chains, empty/.
func TestLayout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := buildChain(t, e.d, "layout", 3, nil)
	if fi, err := os.Stat(filepath.Join(e.home, "l")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("l/: %v, %v; want mode 0755", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(e.home, ".has-mount-program")); err != nil || string(b) != "false" {
		t.Errorf(".has-mount-program = %q, %v; want false", b, err)
	}
	for i, id := range ids {
		checkLayout(t, e, id)
		dir := filepath.Join(e.home, id)
		_, emptyErr := os.Stat(filepath.Join(dir, "empty"))
		lower, lowerErr := os.ReadFile(filepath.Join(dir, "lower"))
		if i == 0 {
			if emptyErr != nil || !errors.Is(lowerErr, os.ErrNotExist) {
				t.Errorf("base layer: empty/ %v, lower file %v; want empty/ and no lower file", emptyErr, lowerErr)
			}
			continue
		}
		if !errors.Is(emptyErr, os.ErrNotExist) {
			t.Errorf("layer %d has empty/ (%v)", i, emptyErr)
		}
		var want []string
		for j := i - 1; j >= 0; j-- {
			short, _ := os.ReadFile(filepath.Join(e.home, ids[j], "link"))
			want = append(want, "l/"+string(short))
		}
		if string(lower) != strings.Join(want, ":") {
			t.Errorf("layer %d: lower = %q, want %q", i, lower, strings.Join(want, ":"))
		}
	}
	// A child copies its parent's diff mode and owner.
	if err := os.Chmod(filepath.Join(e.home, ids[2], "diff"), 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(e.home, ids[2], "diff"), 7, 8); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Create(ctx, "layout-child", ids[2], pluginapi.CreateOpts{ReadWrite: true}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(e.home, "layout-child", "diff"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o751 || st.Uid != 7 || st.Gid != 8 {
		t.Errorf("child diff: mode %v owner %d:%d, want 0751 7:8", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	md, err := e.d.Metadata(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	wantLower := filepath.Join(e.home, ids[1], "diff") + ":" + filepath.Join(e.home, ids[0], "diff")
	if md["LowerDir"] != wantLower || md["UpperDir"] != filepath.Join(e.home, ids[2], "diff") ||
		md["MergedDir"] != filepath.Join(e.home, ids[2], "merged") || md["WorkDir"] != filepath.Join(e.home, ids[2], "work") {
		t.Errorf("metadata = %v", md)
	}
}

// TestFeatureProbeCache: Init writes its probe results into the run home and a later Init uses
// them instead of probing again.
func TestFeatureProbeCache(t *testing.T) {
	e := newEnv(t)
	entries, err := os.ReadDir(e.runHome)
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]string{}
	for _, en := range entries {
		name := en.Name()
		i := strings.LastIndexByte(name, '-')
		if i < 0 {
			continue
		}
		results[name[:i]] = name[i+1:]
	}
	for _, f := range []string{"overlay", "native-diff()", "metacopy()", "volatile"} {
		if v := results[f]; v != "true" && v != "false" {
			t.Errorf("no cached result for probe %s in %s (have %v)", f, e.runHome, results)
		}
	}
	if results["overlay"] != "true" {
		t.Fatalf("overlay probe cached as %q on a kernel where Init succeeded", results["overlay"])
	}
	st := statusMap(t, e.d)
	if st["Native Overlay Diff"] != results["native-diff()"] || st["Using metacopy"] != results["metacopy()"] {
		t.Errorf("status %v disagrees with the cached probes %v", st, results)
	}

	// Replace the native-diff result: a new driver must take it from the cache.
	for _, v := range []string{"true", "false"} {
		_ = os.Remove(filepath.Join(e.runHome, "native-diff()-"+v))
	}
	if err := os.WriteFile(filepath.Join(e.runHome, "native-diff()-false"), []byte("planted by the test"), 0o600); err != nil {
		t.Fatal(err)
	}
	d2 := e.open(t)
	st2 := statusMap(t, d2)
	if st2["Native Overlay Diff"] != "false" || !strings.Contains(st2["Diff Method"], "planted by the test") {
		t.Errorf("second driver's status %v: the cached probe result was not reused", st2)
	}
	// With native diff off, diffs go through mounts and still work.
	ids := buildChain(t, d2, "naive", 2, func(i int) []byte { return tarOf(t, tarEntry{name: fmt.Sprint(i), content: "x"}) })
	ch, err := d2.Changes(context.Background(), ids[1], ids[0])
	if err != nil || len(ch) != 1 || ch[0].Path != "/1" || ch[0].Kind.String() != "Add" {
		t.Errorf("naive changes = %v, %v; want Add /1", ch, err)
	}
}

func statusMap(t *testing.T, d pluginapi.Driver) map[string]string {
	t.Helper()
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range st {
		m[kv[0]] = kv[1]
	}
	return m
}

// TestHomeBindMount: Init makes the home a private bind mount of itself (once, however often
// Init runs), Cleanup undoes it; skip_mount_home leaves the home alone.
func TestHomeBindMount(t *testing.T) {
	e := newEnv(t)
	ms := mountsAt(t, e.home)
	if len(ms) != 1 {
		t.Fatalf("%d mounts at the home after Init, want 1", len(ms))
	}
	if ms[0].Root == "/" || strings.Contains(ms[0].Optional, "shared:") {
		t.Errorf("home mount: root %q, propagation %q; want a private bind mount", ms[0].Root, ms[0].Optional)
	}
	d2 := overlaydriver.New()
	if _, err := d2.Init(context.Background(), e.initOptions()); err != nil {
		t.Fatal(err)
	}
	if n := len(mountsAt(t, e.home)); n != 1 {
		t.Errorf("%d mounts at the home after a second Init, want 1", n)
	}
	if err := d2.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(mountsAt(t, e.home)); n != 0 {
		t.Errorf("%d mounts at the home after Cleanup, want 0", n)
	}

	skip := newEnv(t, "overlay.skip_mount_home=true")
	if n := len(mountsAt(t, skip.home)); n != 0 {
		t.Errorf("%d mounts at the home with skip_mount_home, want 0", n)
	}
}

// TestOptions: option keys with every accepted prefix, and the errors for bad ones, which name
// the key.
func TestOptions(t *testing.T) {
	cases := []struct {
		opt       string
		wantClass error // nil: accepted
	}{
		{"overlay.mountopt=nodev", nil},
		{"overlay2.mountopt=nodev,noexec", nil},
		{".skip_mount_home=true", nil},
		{"ignore_chown_errors=true", nil},
		{"override_kernel_check=true", nil},
		{"overlay.size=", nil},
		{"overlay.imagestore=", nil},
		{"overlay.bogus_key=1", errdefs.ErrInvalidArgument},
		{"bogus_key", errdefs.ErrInvalidArgument},
		{"overlay.skip_mount_home=maybe", errdefs.ErrInvalidArgument},
		{"overlay.force_mask=0755", errdefs.ErrInvalidArgument}, // needs a mount program
		{"overlay.force_mask=nonsense", errdefs.ErrInvalidArgument},
		{"overlay.mount_program=/nonexistent/fuse-overlayfs", errdefs.ErrInvalidArgument},
		{"overlay.size=10G", errdefs.ErrNotSupported},
		{"overlay.inodes=1000", errdefs.ErrNotSupported},
		{"overlay.imagestore=/var/lib/images", errdefs.ErrNotSupported},
		{"overlay.use_composefs=true", errdefs.ErrNotSupported},
	}
	for _, c := range cases {
		t.Run(c.opt, func(t *testing.T) {
			needRoot(t)
			e := &testEnv{root: t.TempDir(), runRoot: t.TempDir()}
			e.home, e.runHome = filepath.Join(e.root, "overlay"), filepath.Join(e.runRoot, "overlay")
			d := overlaydriver.New()
			_, err := d.Init(context.Background(), e.initOptions(c.opt))
			t.Cleanup(func() {
				if err := d.Cleanup(context.Background()); err != nil {
					t.Error(err)
				}
				checkNoMounts(t, e.root)
			})
			if c.wantClass == nil {
				if err != nil {
					t.Fatalf("Init(%s): %v", c.opt, err)
				}
				return
			}
			key, _, _ := strings.Cut(c.opt, "=")
			if !errors.Is(err, c.wantClass) || !strings.Contains(err.Error(), key) {
				t.Fatalf("Init(%s) = %v; want %v naming %s", c.opt, err, c.wantClass, key)
			}
		})
	}
}

// TestGetIdempotent: a second Get (read-write or read-only) of a mounted layer returns the same
// path without stacking a mount; Put unmounts and leaves an empty merged/; a second Put is fine.
func TestGetIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ids := buildChain(t, e.d, "idem", 2, func(i int) []byte { return tarOf(t, tarEntry{name: "f", content: fmt.Sprint(i)}) })
	id := ids[1]
	merged := filepath.Join(e.home, id, "merged")
	var paths []string
	for _, opts := range []pluginapi.MountOpts{{}, {}, {ReadOnly: true}} {
		p, err := e.d.Get(ctx, id, opts)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if paths[0] != merged || paths[1] != merged || paths[2] != merged {
		t.Errorf("Get paths %q, want %s each time", paths, merged)
	}
	if n := len(mountsAt(t, merged)); n != 1 {
		t.Errorf("%d mounts at merged/ after three Gets, want 1", n)
	}
	for i := 0; i < 2; i++ {
		if err := e.d.Put(ctx, id); err != nil {
			t.Fatalf("put %d: %v", i+1, err)
		}
	}
	if n := len(mountsAt(t, merged)); n != 0 {
		t.Errorf("%d mounts at merged/ after Put", n)
	}
	if entries, err := os.ReadDir(merged); err != nil || len(entries) != 0 {
		t.Errorf("merged/ after Put: %v, %v; want an empty directory", entries, err)
	}
	if _, err := os.Stat(filepath.Join(e.home, id, "merged.1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("merged.1 left behind: %v", err)
	}
	// Removing a mounted layer unmounts it.
	if _, err := e.d.Get(ctx, id, pluginapi.MountOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := len(mountsAt(t, merged)); n != 0 {
		t.Errorf("%d mounts at merged/ after Remove", n)
	}
	if err := e.d.Remove(ctx, id); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestMountsSurvivePluginExit: a mount made through the plugin outlives the plugin process; a
// new plugin process unmounts it with Put.
func TestMountsSurvivePluginExit(t *testing.T) {
	needRoot(t)
	exe := conformance.BuildDriver(t, overlaydriver.Name)
	e := &testEnv{root: t.TempDir(), runRoot: t.TempDir()}
	e.home, e.runHome = filepath.Join(e.root, "overlay"), filepath.Join(e.runRoot, "overlay")
	t.Cleanup(func() { checkNoMounts(t, e.root) })
	ctx := context.Background()

	c1 := newClient(t, exe, e)
	if err := c1.Create(ctx, "survivor", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	p, err := c1.Get(ctx, "survivor", pluginapi.MountOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := c1.Pid()
	if pid == 0 {
		t.Fatal("no plugin process")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("plugin %d still alive", pid)
	}
	if ms := mountsAt(t, p); len(ms) != 1 || ms[0].FSType != "overlay" {
		t.Fatalf("mounts at %s after the plugin died: %v, want one overlay", p, ms)
	}
	if got := readFile(t, filepath.Join(p, "f")); got != "kept" {
		t.Errorf("file in the surviving mount = %q", got)
	}

	c2 := newClient(t, exe, e)
	if err := c2.Put(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
	if n := len(mountsAt(t, p)); n != 0 {
		t.Errorf("%d mounts at %s after Put through a new plugin", n, p)
	}
	if err := c2.Remove(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
}

// newClient starts the plugin through pluginapi and initializes it; cleanup runs the driver's
// Cleanup (if the plugin is still alive) and stops it.
func newClient(t *testing.T, exe string, e *testEnv) *pluginapi.Client {
	t.Helper()
	c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: overlaydriver.Name, Path: exe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.Pid() != 0 {
			if err := c.Cleanup(context.Background()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		_ = c.Close()
	})
	if _, err := c.Init(context.Background(), e.initOptions()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNativeChanges: Changes read from the upper directory for the cases a layer tar produces:
// whiteouts, an opaque directory replacing a lower one (its hidden children are deletions), a
// path re-added over a whiteout of the parent.
func TestNativeChanges(t *testing.T) {
	type change struct{ kind, path string }
	cases := []struct {
		name   string
		layers [][]tarEntry // base first; Changes of the last against the one before
		want   []change
	}{
		{"AddModifyDelete", [][]tarEntry{
			{{name: "keep", content: "1"}, {name: "mod", content: "1"}, {name: "del", content: "1"}},
			{{name: "mod", content: "2"}, {name: ".wh.del"}, {name: "new", content: "1"}},
		}, []change{{"Delete", "/del"}, {"Modify", "/mod"}, {"Add", "/new"}}},
		{"OpaqueDirectory", [][]tarEntry{
			{{name: "d", dir: true}, {name: "d/a", content: "1"}, {name: "d/b", content: "1"}},
			{{name: "d", dir: true}, {name: "d/.wh..wh..opq"}, {name: "d/a", content: "2"}, {name: "d/c", content: "1"}},
		}, []change{{"Modify", "/d"}, {"Modify", "/d/a"}, {"Delete", "/d/b"}, {"Add", "/d/c"}}},
		{"ReAddOverWhiteout", [][]tarEntry{
			{{name: "d", dir: true}, {name: "d/f", content: "1"}},
			{{name: ".wh.d"}},
			{{name: "d", dir: true}, {name: "d/g", content: "1"}},
		}, []change{{"Add", "/d"}, {"Add", "/d/g"}}},
		{"DeleteInsideDeletedAncestorsLayer", [][]tarEntry{
			{{name: "a", dir: true}, {name: "a/b", dir: true}, {name: "a/b/c", content: "1"}},
			{{name: "a", dir: true}, {name: "a/.wh..wh..opq"}, {name: "a/x", content: "1"}},
			{{name: "a", dir: true}, {name: "a/b", dir: true}, {name: "a/b/c", content: "2"}},
		}, []change{{"Modify", "/a"}, {"Add", "/a/b"}, {"Add", "/a/b/c"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if st := statusMap(t, e.d); st["Native Overlay Diff"] != "true" {
				t.Skipf("the kernel's overlay is not trusted for native diffs here: %s", st["Diff Method"])
			}
			ids := buildChain(t, e.d, "native", len(c.layers), func(i int) []byte { return tarOf(t, c.layers[i]...) })
			n := len(ids)
			got, err := e.d.Changes(context.Background(), ids[n-1], ids[n-2])
			if err != nil {
				t.Fatal(err)
			}
			var gotS []change
			for _, ch := range got {
				gotS = append(gotS, change{ch.Kind.String(), ch.Path})
			}
			if fmt.Sprint(gotS) != fmt.Sprint(c.want) {
				t.Errorf("changes = %v, want %v", gotS, c.want)
			}
		})
	}
}

// TestInitRemovesLeftovers: Init deletes the staging and removal directories of dead processes
// (what a crash mid-Create or mid-Remove leaves) and keeps those of live ones.
func TestInitRemovesLeftovers(t *testing.T) {
	e := newEnv(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead, live := cmd.Process.Pid, os.Getpid()
	paths := map[string]bool{ // path -> should survive Init
		filepath.Join(e.home, fmt.Sprintf(".create-%d-x-1", dead)):     false,
		filepath.Join(e.home, fmt.Sprintf(".create-%d-x-2", live)):     true,
		filepath.Join(e.home, "tempdirs", fmt.Sprintf("%d-y-1", dead)): false,
		filepath.Join(e.home, "tempdirs", fmt.Sprintf("%d-y-2", live)): true,
	}
	for p := range paths {
		if err := os.MkdirAll(filepath.Join(p, "diff", "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.open(t)
	for p, survive := range paths {
		_, err := os.Stat(p)
		if survive != (err == nil) {
			t.Errorf("%s: after Init: %v; want survive=%v", p, err, survive)
		}
		_ = os.RemoveAll(p)
	}
	if ids, err := e.d.ListLayers(context.Background()); err != nil || len(ids) != 0 {
		t.Errorf("ListLayers = %v, %v; leftovers must not count as layers", ids, err)
	}
}
