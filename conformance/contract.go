package conformance

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// contractCases check the promises of pluginapi.Driver beyond the established suite.
func contractCases() []testCase {
	return []testCase{
		{name: "UnknownLayer", run: testUnknownLayer},
		{name: "CreateMissingParent", run: testCreateMissingParent},
		{name: "DuplicateID", run: testDuplicateID},
		{name: "RemoveIdempotent", run: testRemoveIdempotent},
		{name: "RemoveMounted", run: testRemoveMounted},
		{name: "GetIdempotent", run: testGetIdempotent},
		{name: "UnknownOption", run: testUnknownOption, noInit: true},
		{name: "InfoStatusMetadata", run: testInfoStatusMetadata, noInit: true},
		{name: "ConcurrentCreate", run: testConcurrentCreate},
		{name: "HostileTar", run: testHostileTar},
	}
}

// wantClass fails t unless err wraps class and its text names every string in names.
func wantClass(t testing.TB, what string, err, class error, names ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want an error of class %q", what, class)
	}
	if !errors.Is(err, class) {
		t.Fatalf("%s: error %q (class %v), want class %q", what, err, errdefs.Class(err), class)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Fatalf("%s: error %q does not name %q", what, err, n)
		}
	}
	t.Logf("%s: %v", what, err)
}

// emptyTar is a valid tar stream with no entries.
func emptyTar() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// testUnknownLayer: every call naming a layer that does not exist, as the layer or as the
// parent, fails with ErrNotFound naming that ID; Exists says false.
func testUnknownLayer(t *testing.T, h *harness) {
	ctx := t.Context()
	missing := "missing-" + randomID()[:12]
	h.create(t, "known", "")
	ok, err := h.d.Exists(ctx, missing)
	if err != nil || ok {
		t.Fatalf("Exists(%s) = %v, %v; want false, nil", missing, ok, err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := h.d.Get(ctx, missing, pluginapi.MountOpts{}); return err }},
		{"Metadata", func() error { _, err := h.d.Metadata(ctx, missing); return err }},
		{"Diff", func() error { return drainDiff(h.d.Diff(ctx, missing, "")) }},
		{"DiffAgainstMissingParent", func() error { return drainDiff(h.d.Diff(ctx, "known", missing)) }},
		{"Changes", func() error { _, err := h.d.Changes(ctx, missing, ""); return err }},
		{"ChangesAgainstMissingParent", func() error { _, err := h.d.Changes(ctx, "known", missing); return err }},
		{"DiffSize", func() error { _, err := h.d.DiffSize(ctx, missing, ""); return err }},
		{"ApplyDiff", func() error { _, err := h.d.ApplyDiff(ctx, missing, "", bytes.NewReader(emptyTar())); return err }},
	}
	for _, c := range calls {
		wantClass(t, c.name+" of a missing layer", c.call(), errdefs.ErrNotFound, missing)
	}
}

// drainDiff reads and closes a Diff stream, returning the first error.
func drainDiff(rc io.ReadCloser, err error) error {
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	return errors.Join(err, rc.Close())
}

// testCreateMissingParent: Create on a parent that does not exist fails with ErrNotFound naming
// the parent, and leaves nothing behind: no layer, no file under the driver's home.
func testCreateMissingParent(t *testing.T, h *harness) {
	ctx := t.Context()
	before := snapshotTree(t, h.home)
	err := h.d.Create(ctx, "orphan", "no-such-parent", pluginapi.CreateOpts{})
	wantClass(t, "Create on a missing parent", err, errdefs.ErrNotFound, "no-such-parent")
	if ok, err := h.d.Exists(ctx, "orphan"); err != nil || ok {
		t.Fatalf("Exists(orphan) = %v, %v after a failed Create", ok, err)
	}
	if ids, err := h.d.ListLayers(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("ListLayers = %q, %v after a failed Create; want none", ids, err)
	}
	if diff := before.diff(snapshotTree(t, h.home)); diff != "" {
		t.Fatalf("a failed Create changed the driver home:\n%s", diff)
	}
}

// testDuplicateID: Create of an ID that exists fails with ErrAlreadyExists naming it and leaves
// the existing layer as it was; this holds for an empty base layer too (which a plain rename
// over an empty directory would replace).
func testDuplicateID(t *testing.T, h *harness) {
	ctx := t.Context()
	h.createBase(t, "dup")
	h.create(t, "dup-empty", "")
	h.create(t, "dup-child", "dup")
	for _, c := range []struct{ id, parent string }{
		{"dup", ""}, {"dup", "dup-empty"}, {"dup-empty", ""}, {"dup-empty", "dup"}, {"dup-child", "dup"},
	} {
		err := h.d.Create(ctx, c.id, c.parent, pluginapi.CreateOpts{})
		wantClass(t, fmt.Sprintf("second Create of %s on %q", c.id, c.parent), err, errdefs.ErrAlreadyExists, c.id)
	}
	h.verifyBase(t, "dup", defaultPerms)
	h.verifyBase(t, "dup-child", defaultPerms)
	h.withLayer(t, "dup-empty", func(root string) error { return checkEntries(root) })
}

// testRemoveIdempotent: Remove of a layer that never existed, or twice, succeeds; a removed layer
// is gone from Exists and ListLayers, whatever the modes of its contents.
func testRemoveIdempotent(t *testing.T, h *harness) {
	ctx := t.Context()
	if err := h.d.Remove(ctx, "never-created"); err != nil {
		t.Fatalf("Remove of a layer that never existed: %v", err)
	}
	h.createBase(t, "rm-base")
	h.create(t, "rm-child", "rm-base")
	h.withLayer(t, "rm-child", func(root string) error {
		ro := filepath.Join(root, "ro-dir")
		if err := os.Mkdir(ro, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ro, "locked"), []byte("x"), 0o000); err != nil {
			return err
		}
		return os.Chmod(ro, 0o000)
	})
	for i := range 2 {
		if err := h.d.Remove(ctx, "rm-child"); err != nil {
			t.Fatalf("Remove #%d of rm-child: %v", i+1, err)
		}
	}
	if ok, err := h.d.Exists(ctx, "rm-child"); err != nil || ok {
		t.Fatalf("Exists(rm-child) = %v, %v after Remove", ok, err)
	}
	ids, err := h.d.ListLayers(ctx)
	if err != nil {
		t.Fatalf("list layers: %v", err)
	}
	if !slices.Equal(ids, []string{"rm-base"}) {
		t.Fatalf("ListLayers = %q after removing rm-child, want [rm-base]", ids)
	}
	h.verifyBase(t, "rm-base", defaultPerms)
	_, err = h.d.Get(ctx, "rm-child", pluginapi.MountOpts{})
	wantClass(t, "Get of a removed layer", err, errdefs.ErrNotFound, "rm-child")
}

// testRemoveMounted: Remove of a layer that is mounted (Get without Put) unmounts and deletes it;
// its parent stays intact.
func testRemoveMounted(t *testing.T, h *harness) {
	ctx := t.Context()
	h.createBase(t, "mounted-parent")
	h.create(t, "mounted", "mounted-parent")
	p, err := h.d.Get(ctx, "mounted", pluginapi.MountOpts{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if err := os.WriteFile(filepath.Join(p, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Remove(ctx, "mounted"); err != nil {
		t.Fatalf("Remove of a mounted layer: %v", err)
	}
	if ok, err := h.d.Exists(ctx, "mounted"); err != nil || ok {
		t.Fatalf("Exists(mounted) = %v, %v after Remove", ok, err)
	}
	if _, err := os.Lstat(filepath.Join(p, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the removed layer's file is still visible at its mount path: %v", err)
	}
	h.verifyBase(t, "mounted-parent", defaultPerms)
}

// testGetIdempotent: a second Get returns the same path without unmounting the first; a Put of a
// layer not mounted, or a second Put, succeeds; contents survive Put and Get.
func testGetIdempotent(t *testing.T, h *harness) {
	ctx := t.Context()
	h.create(t, "get-base", "")
	h.create(t, "get-layer", "get-base")
	if err := h.d.Put(ctx, "get-layer"); err != nil {
		t.Fatalf("Put of a layer never mounted: %v", err)
	}
	p1, err := h.d.Get(ctx, "get-layer", pluginapi.MountOpts{})
	if err != nil {
		t.Fatalf("first Get: %v", err)
	}
	if err := os.WriteFile(filepath.Join(p1, "marker"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	p2, err := h.d.Get(ctx, "get-layer", pluginapi.MountOpts{})
	if err != nil {
		t.Fatalf("second Get: %v", err)
	}
	if p1 != p2 {
		t.Fatalf("second Get returned %s, first %s", p2, p1)
	}
	if b, err := os.ReadFile(filepath.Join(p1, "marker")); err != nil || string(b) != "one" {
		t.Fatalf("after a second Get, the first path reads %q, %v", b, err)
	}
	for i := range 2 {
		if err := h.d.Put(ctx, "get-layer"); err != nil {
			t.Fatalf("Put #%d: %v", i+1, err)
		}
	}
	h.checkFile(t, "get-layer", "marker", []byte("one"))
	if err := h.d.Put(ctx, "get-layer"); err != nil {
		t.Fatalf("Put after the last Put: %v", err)
	}
}

// testUnknownOption: Init with an option key the driver does not know fails with
// ErrInvalidArgument naming the key, whatever its prefix; the driver then still initializes
// with its valid options.
func testUnknownOption(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, key := range []string{h.cfg.Driver + ".no_such_option", ".no_such_option", "no_such_option"} {
		opts := h.initOptions()
		opts.Options = append(opts.Options, key+"=1")
		_, err := h.d.Init(ctx, opts)
		wantClass(t, "Init with option "+key, err, errdefs.ErrInvalidArgument, "no_such_option")
	}
	h.init(t)
	h.create(t, "after-bad-options", "")
	if h.proc != nil {
		// A relaunched plugin must be initialized with the options that worked.
		pid := killPlugin(t, h)
		wantRelaunched(t, h, pid, "after-bad-options")
	}
}

// testInfoStatusMetadata: Info works before Init and names the driver and the contract
// version; after Init, Status and Metadata of a layer succeed, and Metadata of a missing layer is
// ErrNotFound.
func testInfoStatusMetadata(t *testing.T, h *harness) {
	ctx := t.Context()
	info, err := h.d.Info(ctx)
	if err != nil {
		t.Fatalf("Info before Init: %v", err)
	}
	if info.Name != h.cfg.Driver || !slices.Contains(info.APIVersions, pluginapi.APIVersion) {
		t.Fatalf("Info = %+v; want name %q and API version %d", info, h.cfg.Driver, pluginapi.APIVersion)
	}
	h.init(t)
	if _, err := h.d.Status(ctx); err != nil {
		t.Fatalf("Status: %v", err)
	}
	h.create(t, "meta", "")
	if _, err := h.d.Metadata(ctx, "meta"); err != nil {
		t.Fatalf("Metadata of a layer: %v", err)
	}
	_, err = h.d.Metadata(ctx, "no-such-layer")
	wantClass(t, "Metadata of a missing layer", err, errdefs.ErrNotFound, "no-such-layer")
}

// testConcurrentCreate: Creates, writes and Removes of different layers on one parent may run
// concurrently; each layer ends up with its parent's contents and only its own changes.
func testConcurrentCreate(t *testing.T, h *harness) {
	ctx := t.Context()
	h.createBase(t, "shared-parent")
	const n = 6
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = fmt.Sprintf("concurrent-%d", i)
		wg.Go(func() {
			id := ids[i]
			if errs[i] = h.d.Create(ctx, id, "shared-parent", pluginapi.CreateOpts{}); errs[i] != nil {
				return
			}
			p, err := h.d.Get(ctx, id, pluginapi.MountOpts{})
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = errors.Join(os.WriteFile(filepath.Join(p, "own"), []byte(id), 0o644), h.d.Put(ctx, id))
		})
	}
	wg.Wait()
	h.created = append(h.created, ids...)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent creates: %v", err)
	}
	for _, id := range ids {
		if err := checkChanges([]archive.Change{{Path: "/own", Kind: archive.ChangeAdd}}, h.changes(t, id, "shared-parent")); err != nil {
			t.Fatalf("layer %s: %v", id, err)
		}
		h.checkFile(t, id, "own", []byte(id))
	}
	for i := range n {
		wg.Go(func() { errs[i] = h.d.Remove(ctx, ids[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent removes: %v", err)
	}
	got, err := h.d.ListLayers(ctx)
	if err != nil || !slices.Equal(got, []string{"shared-parent"}) {
		t.Fatalf("ListLayers = %q, %v after removing the concurrent layers", got, err)
	}
	h.verifyBase(t, "shared-parent", defaultPerms)
}

// testHostileTar: entries that climb out of the layer ("../", absolute, through a symlink, a hard
// link to an outside file) never change anything outside the layer; those that name an outside
// path directly fail with ErrInvalidArgument.
func testHostileTar(t *testing.T, h *harness) {
	ctx := t.Context()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// up reaches / from any layer directory, then outside.
	up := strings.Repeat("../", 40) + strings.TrimPrefix(outside, "/")
	type entry struct {
		name, link string
		typ        byte
	}
	cases := []struct {
		name    string
		entries []entry
		wantErr bool // fail with ErrInvalidArgument; otherwise failing is allowed, escaping is not
	}{
		{"DotDot", []entry{{name: "../escape", typ: tar.TypeReg}}, true},
		{"DeepDotDot", []entry{{name: up + "/escape", typ: tar.TypeReg}}, true},
		{"DotDotDir", []entry{{name: "../escape-dir/", typ: tar.TypeDir}}, true},
		{"DotDotInside", []entry{{name: "a/../../escape", typ: tar.TypeReg}}, true},
		{"HardlinkOutside", []entry{{name: "stolen", link: up + "/secret", typ: tar.TypeLink}}, true},
		{"AbsoluteSymlinkThenFile", []entry{{name: "evil", link: outside, typ: tar.TypeSymlink}, {name: "evil/escape", typ: tar.TypeReg}}, false},
		{"RelativeSymlinkThenFile", []entry{{name: "evil", link: up, typ: tar.TypeSymlink}, {name: "evil/escape", typ: tar.TypeReg}}, false},
		{"SymlinkThenHardlink", []entry{{name: "evil", link: outside, typ: tar.TypeSymlink}, {name: "stolen", link: "evil/secret", typ: tar.TypeLink}}, false},
		{"AbsoluteName", []entry{{name: outside + "/escape", typ: tar.TypeReg}}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("hostile-%d", i)
			h.create(t, id, "")
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range c.entries {
				hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Format: tar.FormatPAX}
				var body []byte
				if e.typ == tar.TypeReg {
					body = []byte("pwned")
					hdr.Size = int64(len(body))
				}
				if e.typ == tar.TypeDir {
					hdr.Mode = 0o755
				}
				if err := tw.WriteHeader(hdr); err != nil {
					t.Fatal(err)
				}
				if _, err := tw.Write(body); err != nil {
					t.Fatal(err)
				}
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			rootBefore := snapshotTree(t, h.root, id)
			_, err := h.d.ApplyDiff(ctx, id, "", bytes.NewReader(buf.Bytes()))
			if c.wantErr {
				wantClass(t, "ApplyDiff of a hostile tar", err, errdefs.ErrInvalidArgument)
			}
			if diff := rootBefore.diff(snapshotTree(t, h.root, id)); diff != "" {
				t.Fatalf("ApplyDiff (error %v) changed the graph root outside the layer:\n%s", err, diff)
			}
			if cerr := checkEntries(outside, "secret"); cerr != nil {
				t.Fatalf("ApplyDiff (error %v) wrote outside the layer: %v", err, cerr)
			}
			if b, rerr := os.ReadFile(secret); rerr != nil || string(b) != "secret" {
				t.Fatalf("ApplyDiff (error %v): outside file now reads %q, %v", err, b, rerr)
			}
			for _, name := range []string{"escape", "escape-dir"} {
				for _, dir := range []string{"/", filepath.Dir(h.root), os.TempDir()} {
					if _, lerr := os.Lstat(filepath.Join(dir, name)); !errors.Is(lerr, fs.ErrNotExist) {
						t.Fatalf("%s exists after ApplyDiff (error %v)", filepath.Join(dir, name), err)
					}
				}
			}
			h.withLayer(t, id, func(root string) error {
				// A hard link that was accepted must not share the outside file's inode.
				fi, err := os.Lstat(filepath.Join(root, "stolen"))
				if err != nil {
					return nil
				}
				sfi, err := os.Stat(secret)
				if err != nil {
					return err
				}
				if os.SameFile(fi, sfi) {
					return fmt.Errorf("the layer's %q is a hard link to %s", "stolen", secret)
				}
				return nil
			})
		})
	}
}

// treeSnapshot records type, mode, owner, size, mtime and link target of every path in a tree.
type treeSnapshot map[string]string

// snapshotTree records dir, skipping any path with a component equal to one of skip (a layer's
// own directories, wherever the driver keeps them).
func snapshotTree(t testing.TB, dir string, skip ...string) treeSnapshot {
	t.Helper()
	snap := treeSnapshot{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, c := range strings.Split(rel, string(filepath.Separator)) {
			if slices.Contains(skip, c) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			desc += fmt.Sprintf(" size=%d mtime=%d", fi.Size(), fi.ModTime().UnixNano())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return snap
}

// diff describes how after differs from s, or returns "".
func (s treeSnapshot) diff(after treeSnapshot) string {
	var lines []string
	for p, d := range s {
		if a, ok := after[p]; !ok {
			lines = append(lines, "- "+p+" "+d)
		} else if a != d {
			lines = append(lines, "~ "+p+" "+d+" => "+a)
		}
	}
	for p, a := range after {
		if _, ok := s[p]; !ok {
			lines = append(lines, "+ "+p+" "+a)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
