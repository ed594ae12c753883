package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testAdminCommands(t *testing.T, s *store) {
	t.Helper()
	// status: to stderr, JSON to stdout.
	r := s.cli("status")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("status: %v", r)
	}
	st := lines(r.stderr)
	if len(st) < 4 || st[0] != "Root: "+s.graph || st[1] != "Run Root: "+s.run || st[2] != "Driver Name: "+s.driver ||
		st[3] != fmt.Sprintf("Driver Options: %v", s.driverOptsList()) {
		t.Fatalf("status: %q", st)
	}
	var pairs [][2]string
	decodeJSON(t, "status -j", s.ok("status", "-j"), &pairs)
	if len(pairs) != len(st) || pairs[0] != [2]string{"Root", s.graph} || pairs[2] != [2]string{"Driver Name", s.driver} {
		t.Fatalf("status -j: %v", pairs)
	}

	if lookupCommand("check") != nil {
		testCheckAndGC(t, s)
	}

	s.fails(1, "not supported", "dedup")
	s.fails(1, "invalid hash method: md5", "dedup", "--hash-method", "md5")

	// unshare: as root the command runs directly; its failure is exit 1.
	if out := s.ok("unshare", "sh", "-c", "echo inside"); out != "inside\n" {
		t.Fatalf("unshare printed %q", out)
	}
	s.fails(1, "exit status 3", "unshare", "sh", "-c", "exit 3")
	if r := runCLI(t, runOpts{env: []string{"SHELL=/bin/true"}}, s.args("unshare")...); r.code != 0 {
		t.Fatalf("unshare with the default shell: %v", r)
	}

	// wipe, then shutdown: fails while something is mounted, even with -f.
	if out := s.ok("wipe", "-j"); out != `""`+"\n" {
		t.Fatalf("wipe -j = %q", out)
	}
	if out := s.ok("layers"); out != "" {
		t.Fatalf("layers after wipe: %q", out)
	}
	s.ok("create-layer", "-n", "m")
	s.ok("mount", "m")
	r = s.fails(1, "shutdown: ", "shutdown")
	if !strings.HasPrefix(r.stderr, "shutdown: a layer is mounted") || strings.Count(r.stderr, "shutdown: ") != 1 {
		t.Fatalf("shutdown with a mounted layer: %v", r)
	}
	r = s.cli("shutdown", "-j")
	if r.code != 1 || r.stderr != "" || !strings.HasPrefix(r.stdout, "{") {
		t.Fatalf("shutdown -j with a mounted layer: %v", r)
	}
	s.fails(1, "a layer is mounted", "shutdown", "-f")
	if out := s.ok("mounted", "m"); out != "" {
		t.Fatalf("shutdown -f left m mounted: %q", out)
	}
	if out := s.ok("shutdown", "-j"); out != `""`+"\n" {
		t.Fatalf("shutdown -j = %q", out)
	}
	s.ok("shutdown")
	s.ok("wipe")
}

func (s *store) driverOptsList() []string {
	if s.driverOpts == nil {
		return []string{}
	}
	return s.driverOpts
}

func testCheckAndGC(t *testing.T, s *store) {
	t.Helper()
	// The layer that exists only in the driver is reported.
	r := s.cli("check")
	if r.code != 1 || !strings.Contains(r.stdout, "layer "+s.storageOnly+":\n") ||
		!strings.Contains(r.stdout, " layer in lower level storage driver not accounted for") {
		t.Fatalf("check: %v", r)
	}
	r = s.cli("check", "-j")
	var report map[string]map[string][]any
	decodeJSON(t, "check -j", r.stdout, &report)
	if r.code != 1 || len(report["Layers"][s.storageOnly]) == 0 {
		t.Fatalf("check -j: %v", r)
	}
	// The container whose image the generic delete removed is damaged too: -r alone does not
	// remove containers, -f does.
	if !strings.Contains(r.stdout, `"Containers":{"`) {
		t.Fatalf("check -j does not report the container without image: %v", r)
	}
	r = s.cli("check", "-r")
	if r.code != 1 || !strings.Contains(r.stdout, "image image-two: image missing") || r.stderr == "" {
		t.Fatalf("check -r with a damaged container: %v", r)
	}
	s.ok("check", "-r", "-f")
	if out := s.ok("check"); out != "" {
		t.Fatalf("check after repair: %q", out)
	}
	s.ok("check", "-q", "-m", "1h")
	s.fails(1, "", "check", "-m", "soon")
	s.ok("gc")
	if out := s.ok("gc", "-j"); out != `""`+"\n" {
		t.Fatalf("gc -j = %q", out)
	}
}

// TestStoreModes passes the split-store, transient-store, additional-image-store and unshare
// flags through to the store and checks where the records land.
func TestStoreModes(t *testing.T) {
	t.Run("image-store", func(t *testing.T) {
		s := vfsStore(t)
		split := filepath.Join(t.TempDir(), "split")
		s.driverOpts = nil
		s.ok("--image-store", split, "create-layer", "-n", "top")
		id := lines(s.ok("create-image", "--image-store", split, "-n", "split-img", "top"))[0]
		b, err := os.ReadFile(filepath.Join(split, "vfs-images", "images.json"))
		if err != nil || !strings.Contains(string(b), id) {
			t.Fatalf("the image is not in the split store: %q %v", b, err)
		}
		top := s.idOf("layer", "top")
		if r := s.cli("--image-store", split, "delete-image", "split-img"); r.code != 0 || r.stderr != "split-img: "+top+"\n" {
			t.Fatalf("delete-image in the split store: %v", r)
		}
	})
	t.Run("transient-store", func(t *testing.T) {
		s := vfsStore(t)
		s.ok("--transient-store", "create-container", "-n", "tc", "")
		b, err := os.ReadFile(filepath.Join(s.run, "vfs-containers", "volatile-containers.json"))
		if err != nil || !strings.Contains(string(b), `"tc"`) {
			t.Fatalf("the transient container is not under the run root: %q %v", b, err)
		}
		if got := lines(s.ok("containers", "--transient-store")); len(got) != 2 || got[1] != "\tname: tc" {
			t.Fatalf("containers --transient-store: %q", got)
		}
		s.ok("--transient-store", "delete-container", "tc")
	})
	t.Run("read-only image store", func(t *testing.T) {
		ro := vfsStore(t)
		layer := lines(ro.ok("create-layer", "-n", "ro-layer"))[0]
		img := lines(ro.ok("create-image", "-n", "ro-img", "ro-layer"))[0]
		s := vfsStore(t)
		s.driverOpts = []string{"vfs.imagestore=" + ro.graph}
		wantLines(t, "layer in a read-only store", s.ok("layer", "ro-layer"), "ID: "+layer, "Name: ro-layer", "Read Only: true")
		got := lines(s.ok("image", "ro-img"))
		if len(got) < 2 || got[0] != "ID: "+img || got[len(got)-1] != "Read Only: true" {
			t.Fatalf("image in a read-only store: %q", got)
		}
		s.fails(1, "", "delete-layer", "ro-layer")
	})
	t.Run("unshare flag", func(t *testing.T) {
		s := vfsStore(t)
		s.ok("-U", "create-layer", "-n", "u")
		wantLines(t, "layers -U", s.ok("layers", "--unshare"), lines(s.ok("layers", "-q"))[0], "\tname: u")
	})
}
