package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testDeleteCommands(t *testing.T, s *store) {
	t.Helper()
	// delete-layer refuses a layer with children; errors go to stderr as "ARG: error".
	r := s.fails(1, "base: ", "delete-layer", "base")
	if r.stdout != "" {
		t.Fatalf("delete-layer printed %q", r.stdout)
	}
	r = s.cli("deletelayer", "-j", "no-such-layer")
	var errs map[string]string
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("delete-layer -j of a missing layer: %v", r)
	}
	decodeJSON(t, "delete-layer -j", r.stdout, &errs)
	if !strings.Contains(errs["no-such-layer"], "layer not known") {
		t.Fatalf("delete-layer -j: %v", errs)
	}
	s.ok("delete-layer", "applied")
	if s.cli("exists", "applied").code != 1 {
		t.Fatal("delete-layer left the layer")
	}
	decodeJSON(t, "delete-layer -j", s.ok("delete-layer", "-j", "gzsrc"), &errs)
	if v, ok := errs["gzsrc"]; !ok || v != "" {
		t.Fatalf("delete-layer -j success: %v", errs)
	}

	// delete-image refuses an image in use, -t only reports.
	img := s.idOf("image", "img")
	top := s.idOf("layer", "imported")
	s.fails(1, "img: ", "delete-image", "img")
	s.ok("delete-container", "ctr")
	dryRun := s.cli("delete-image", "-t", "img")
	if dryRun.code != 0 || dryRun.stdout != "" || dryRun.stderr != "img: "+top+"\n" {
		t.Fatalf("delete-image -t: %v", dryRun)
	}
	s.ok("exists", "-i", "img")
	var deleted map[string]struct {
		DeletedLayers []string `json:"deleted-layers"`
		Error         string   `json:"error"`
	}
	decodeJSON(t, "delete-image -j", s.ok("deleteimage", "-j", img), &deleted)
	if d := deleted[img]; len(d.DeletedLayers) != 1 || d.DeletedLayers[0] != top || d.Error != "" {
		t.Fatalf("delete-image -j: %+v", deleted)
	}
	r = s.cli("delete-image", "-j", "no-such-image")
	if r.code != 1 || !strings.Contains(r.stdout, `{"no-such-image":{"error":"`) || !strings.Contains(r.stdout, "image not known") {
		t.Fatalf("delete-image -j of a missing image: %v", r)
	}
	s.fails(1, "no-such-image: ", "delete-image", "no-such-image")

	// delete-container: errors to stderr; its directories go with it.
	dir := strings.TrimSuffix(s.ok("get-container-dir", "c2"), "\n")
	s.ok("deletecontainer", "c2")
	if _, err := os.Stat(filepath.Dir(dir)); !os.IsNotExist(err) {
		t.Fatalf("delete-container left %s", filepath.Dir(dir))
	}
	s.fails(1, "no-such-container: ", "delete-container", "no-such-container")
	var cerrs map[string]string
	r = s.cli("delete-container", "-j", "no-such-container")
	decodeJSON(t, "delete-container -j", r.stdout, &cerrs)
	if r.code != 1 || !strings.Contains(cerrs["no-such-container"], "container not known") {
		t.Fatalf("delete-container -j: %v", r)
	}

	// delete: no safety checks, any kind.
	s.ok("delete", "noimage")
	decodeJSON(t, "delete -j", s.ok("delete", "-j", "layerless"), &errs)
	if v, ok := errs["layerless"]; !ok || v != "" {
		t.Fatalf("delete -j: %v", errs)
	}
	// An image in use by a container: delete does not care.
	s.ok("create-container", "-n", "user", "img2")
	s.fails(1, "img2: ", "delete-image", "img2")
	s.ok("delete", "img2")
	if s.cli("exists", "-i", "img2").code != 1 {
		t.Fatal("delete left the image")
	}
	s.fails(1, "no-such-item: ", "delete", "no-such-item")
}
