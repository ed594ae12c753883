package main

import (
	"testing"
)

func testNameAndMetadataCommands(t *testing.T, s *store) {
	t.Helper()
	// Names of each kind.
	wantLines(t, "get-names", s.ok("get-names", "l2"), "l2")
	if out := s.ok("getnames", "-j", "img2"); out != `["img2"]`+"\n" {
		t.Fatalf("get-names -j = %q", out)
	}
	stdinLayer := lines(s.ok("layers", "-q"))[3]
	if out := s.ok("get-names", "-j", stdinLayer); out != "[]\n" {
		t.Fatalf("get-names -j of a nameless layer = %q", out)
	}
	if out := s.ok("add-names", "-n", "l2-new", "l2"); out != "" {
		t.Fatalf("add-names printed %q", out)
	}
	if out := s.ok("addnames", "-j", "-n", "first", "l2"); out != `["first","l2-new","l2"]`+"\n" {
		t.Fatalf("add-names -j = %q (new names go in front)", out)
	}
	if out := s.ok("remove-names", "-j", "-n", "first", "-n", "l2-new", "l2"); out != `["l2"]`+"\n" {
		t.Fatalf("remove-names -j = %q", out)
	}
	s.ok("removenames", "-n", "l2", "layer-two")
	if out := s.ok("get-names", "layer-two"); out != "" {
		t.Fatalf("names after removing all: %q", out)
	}
	if out := s.ok("setnames", "-j", "-n", "l2", "layer-two"); out != `["l2"]`+"\n" {
		t.Fatalf("set-names -j = %q", out)
	}
	// set-names steals a name from another item of the same kind.
	ctr := s.idOf("container", "ctr")
	s.ok("set-names", "-n", "c2", "-n", "stolen", "ctr")
	wantLines(t, "get-names after set-names", s.ok("get-names", ctr), "c2", "stolen")
	if out := s.ok("get-names", "ctr-two"); out != "" {
		t.Fatalf("c2 was not stolen from ctr-two: %q", out)
	}
	s.ok("set-names", "-n", "ctr", ctr)
	s.ok("set-names", "-n", "c2", "ctr-two")
	s.fails(1, "", "get-names", "no-such-item")
	s.fails(1, "", "add-names", "-n", "x", "no-such-item")

	// metadata and set-metadata.
	wantLines(t, "metadata", s.ok("metadata", "ctr", "img2"), "ctr: cmeta", "img2: meta2")
	wantLines(t, "metadata -q", s.ok("metadata", "-q", "img"), "from-file")
	if out := s.ok("metadata", "-j", "ctr"); out != `{"ctr":"cmeta"}`+"\n" {
		t.Fatalf("metadata -j = %q", out)
	}
	r := s.cli("metadata", "ctr", "no-such-item")
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("metadata with a missing item: %v", r)
	}
	wantLines(t, "metadata with a missing item", r.stdout, "ctr: cmeta", "no-such-item: ")
	s.ok("set-metadata", "-m", "new meta\n", "l2")
	wantLines(t, "metadata after set-metadata", s.ok("metadata", "l2"), "l2: new meta")
	s.ok("setmetadata", "-f", writeFile(t, t.TempDir(), "m", []byte("file meta")), "img2")
	wantLines(t, "metadata from file", s.ok("metadata", "-q", "img2"), "file meta")
	s.fails(1, "no new metadata provided", "set-metadata", "l2")
	s.fails(1, "", "set-metadata", "-m", "x", "no-such-item")

	// exists, with and without a kind.
	wantLines(t, "exists", s.ok("exists", "l2", "img", "ctr", "l2"), "l2: true", "img: true", "ctr: true")
	r = s.cli("exists", "l2", "no-such-item")
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("exists with a missing item: %v", r)
	}
	wantLines(t, "exists with a missing item", r.stdout, "l2: true", "no-such-item: false")
	if out := s.ok("exists", "-j", "l2", "img"); out != `{"img":true,"l2":true}`+"\n" {
		t.Fatalf("exists -j = %q", out)
	}
	if out := s.ok("exists", "-q", "l2"); out != "" {
		t.Fatalf("exists -q printed %q", out)
	}
	s.ok("exists", "-l", "l2")
	s.ok("exists", "-i", "img")
	s.ok("exists", "-c", "ctr")
	for _, args := range [][]string{{"-i", "l2"}, {"-c", "img"}, {"-l", "ctr"}} {
		r := s.cli(append([]string{"exists"}, args...)...)
		if r.code != 1 || r.stderr != "" || r.stdout != args[1]+": true\n" {
			t.Fatalf("exists %v (wrong kind): %v", args, r)
		}
	}
}
