package main

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func testLayerCommands(t *testing.T, s *store) {
	t.Helper()
	// Empty store.
	wantEmptyList(t, s, "layers")

	out := s.ok("create-layer", "-n", "base", "-n", "base-alias")
	base := lines(out)[0]
	if !hexID.MatchString(base) {
		t.Fatalf("generated layer ID %q is not 64 hex digits", base)
	}
	wantLines(t, "create-layer", out, base, "\tbase", "\tbase-alias")

	var two layerJSON
	decodeJSON(t, "create-layer -j", s.ok("createlayer", "-j", "-n", "l2", "--id", "layer-two", "-l", "", "base"), &two)
	if two.ID != "layer-two" || two.Parent != base || len(two.Names) != 1 || two.Names[0] != "l2" {
		t.Fatalf("create-layer -j: %+v", two)
	}

	dir := t.TempDir()
	tarData := tarOf(t, [2]string{"hello.txt", "hello\n"}, [2]string{"dir/", ""}, [2]string{"dir/file", "x"})
	tarFile := writeFile(t, dir, "layer.tar", tarData)
	imp := lines(s.ok("import-layer", "-f", tarFile, "-n", "imported"))[0]
	var impJSON layerJSON
	decodeJSON(t, "layer -j", s.ok("layer", "-j", imp), &[]*layerJSON{&impJSON})
	if want := fmt.Sprintf("sha256:%x", sha256.Sum256(tarData)); impJSON.DiffDigest != want || impJSON.DiffSize != int64(len(tarData)) {
		t.Fatalf("imported layer: diff digest %s size %d, want %s %d", impJSON.DiffDigest, impJSON.DiffSize, want, len(tarData))
	}
	// import-layer reads stdin by default.
	r := s.cliIn(string(tarData), "importlayer", "-j", base)
	var stdinLayer layerJSON
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("import-layer from stdin: %v", r)
	}
	decodeJSON(t, "import-layer -j", r.stdout, &stdinLayer)
	if stdinLayer.Parent != base {
		t.Fatalf("import-layer parent = %q, want %q", stdinLayer.Parent, base)
	}

	wantLines(t, "layers", s.ok("layers"),
		base, "\tname: base", "\tname: base-alias",
		"layer-two", "\tname: l2",
		imp, "\tname: imported",
		stdinLayer.ID)
	wantLines(t, "layers -q", s.ok("layers", "-q"), base, "layer-two", imp, stdinLayer.ID)
	var all []layerJSON
	decodeJSON(t, "layers -j", s.ok("layers", "-j"), &all)
	if len(all) != 4 || all[0].ID != base || all[1].ID != "layer-two" {
		t.Fatalf("layers -j: %+v", all)
	}
	tree := s.ok("layers", "-t")
	wantTreeShape(t, tree, base, imp, "layer-two", stdinLayer.ID)

	got := lines(s.ok("storage-layers"))
	sort.Strings(got)
	want := []string{base, "layer-two", imp, stdinLayer.ID}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("storage-layers = %q, want %q", got, want)
	}
	var stored []string
	decodeJSON(t, "storage-layers -j", s.ok("storage-layers", "-j"), &stored)
	if len(stored) != 4 {
		t.Fatalf("storage-layers -j = %q", stored)
	}

	// layer: by name, by ID, by unique prefix.
	wantLines(t, "layer", s.ok("layer", "l2"), "ID: layer-two", "Parent: "+base, "Name: l2")
	wantLines(t, "layer by prefix", s.ok("layer", base[:12]), "ID: "+base, "Name: base", "Name: base-alias")
	r = s.cli("layer", "no-such-layer")
	if r.code != 1 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("layer of a missing layer: %v", r)
	}
	r = s.cli("layer", "-j", "l2", "no-such-layer")
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("layer -j with a missing layer: %v", r)
	}
	var some []layerJSON
	decodeJSON(t, "layer -j", r.stdout, &some)
	if len(some) != 1 || some[0].ID != "layer-two" {
		t.Fatalf("layer -j: %+v", some)
	}

	wantLines(t, "layer-parent-owners", s.ok("layer-parent-owners", "l2"), "ID: layer-two")
	var owners struct {
		ID   string
		UIDs []int
		GIDs []int
	}
	decodeJSON(t, "layer-parent-owners -j", s.ok("layer-parent-owners", "-j", "l2"), &owners)
	if owners.ID != "layer-two" {
		t.Fatalf("layer-parent-owners -j: %+v", owners)
	}

	// Layer big data.
	if out := s.ok("list-layer-data", "l2"); out != "" {
		t.Fatalf("list-layer-data on a fresh layer: %q", out)
	}
	testBigDataRoundTrip(t, s, bigDataCase{kind: "layer", ref: "l2",
		fileKey: "key1", fileData: "blob-data", stdinKey: "Some Key", stdinData: "stdin-data"})
	s.fails(1, "", "get-layer-data", "l2", "no-such-key")
	s.fails(1, "layer not known", "list-layer-data", "no-such-layer")

	// Errors of the create commands.
	s.fails(1, "that ID is already in use", "create-layer", "--id", "layer-two")
	s.fails(1, "that name is already in use", "create-layer", "-n", "l2")
	s.fails(1, "layer not known", "create-layer", "no-such-parent")
	s.fails(1, "not supported", "create-layer", "--uidmap", "0:100000:65536")
	s.fails(1, "host uid map specified along with UID mapping", "create-layer", "--hostuidmap", "--uidmap", "0:1:1")
	s.fails(1, "", "import-layer", "-f", filepath.Join(dir, "missing.tar"))

	// create-storage-layer creates only in the driver.
	var sid string
	decodeJSON(t, "create-storage-layer -j", s.ok("create-storage-layer", "-j"), &sid)
	if !hexID.MatchString(sid) {
		t.Fatalf("create-storage-layer -j = %q", sid)
	}
	if strings.Contains(s.ok("layers", "-q"), sid) || !strings.Contains(s.ok("storage-layers"), sid) {
		t.Fatalf("storage-only layer %s listed wrongly", sid)
	}
	// Remove it again through the generic delete, which falls through to the driver, or leave it
	// to wipe at cleanup; check reports it (see testAdminCommands).
	s.storageOnly = sid
}

// wantTreeShape checks the `layers -t` output: "(base)" first, then the base layers with
// box-drawing connectors, children indented below their parent.
func wantTreeShape(t *testing.T, tree, base, imp, two, child string) {
	t.Helper()
	got := lines(tree)
	if len(got) == 0 || got[0] != "(base)" {
		t.Fatalf("layers -t does not start with (base): %q", got)
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		"├─" + base, "│ name: base", "│ name: base-alias",
		"└─" + imp, "  name: imported",
		"│ ├─layer-two", "│ │ name: l2", "│ └─" + child,
	} {
		if !strings.Contains(joined, want) {
			t.Fatalf("layers -t lacks %q:\n%s", want, joined)
		}
	}
}

// idOf returns the ID of the layer, image or container named ref, through the command
// ("layer", "image", "container") with -j.
