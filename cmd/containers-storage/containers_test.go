package main

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
)

func testContainerCommands(t *testing.T, s *store) {
	t.Helper()
	wantEmptyList(t, s, "containers")
	img := s.idOf("image", "img")
	out := s.ok("create-container", "-n", "ctr", "-m", "cmeta", "img")
	ctr := lines(out)[0]
	if !hexID.MatchString(ctr) {
		t.Fatalf("generated container ID %q", ctr)
	}
	wantLines(t, "create-container", out, ctr, "\tctr")
	var c2 containerJSON
	decodeJSON(t, "createcontainer -j", s.ok("createcontainer", "-j", "--id", "ctr-two", "-n", "c2", "--volatile", "img2"), &c2)
	if c2.ID != "ctr-two" || c2.Image != "image-two" || c2.Layer == "" {
		t.Fatalf("create-container -j: %+v", c2)
	}
	var bare containerJSON
	decodeJSON(t, "create-container \"\"", s.ok("create-container", "-j", "-n", "noimage", ""), &bare)
	if bare.Image != "" || bare.Layer == "" {
		t.Fatalf("image-less container: %+v", bare)
	}
	s.fails(1, "image not known", "create-container", "no-such-image")
	s.fails(1, "that name is already in use", "create-container", "-n", "ctr", "img")
	s.fails(1, "not supported", "create-container", "--gidmap", "0:1:1", "img")

	var c containerJSON
	decodeJSON(t, "container -j", s.ok("container", "-j", "ctr"), &[]*containerJSON{&c})
	if c.Image != img || c.Metadata != "cmeta" {
		t.Fatalf("container -j: %+v", c)
	}
	got := lines(s.ok("container", "ctr"))
	if len(got) != 7 || got[0] != "ID: "+ctr || got[1] != "Name: ctr" || got[2] != "Image: "+img ||
		got[3] != "Image name: img" || got[4] != "Image name: img:latest" ||
		!regexp.MustCompile(`^Size( unknown)?: `).MatchString(got[5]) || got[6] != "Layer: "+c.Layer {
		t.Fatalf("container: %q", got)
	}
	if r := s.cli("container", "no-such-container"); r.code != 1 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("container of a missing container: %v", r)
	}

	// Volatile containers are kept in their own file and listed after the others.
	wantLines(t, "containers", s.ok("containers"), ctr, "\tname: ctr", bare.ID, "\tname: noimage", "ctr-two", "\tname: c2")
	var cs []containerJSON
	decodeJSON(t, "containers -j", s.ok("containers", "-j"), &cs)
	if len(cs) != 3 {
		t.Fatalf("containers -j: %+v", cs)
	}

	wantLines(t, "container-parent-owners", s.ok("container-parent-owners", "ctr"), "ID: "+ctr, "UIDs: []", "GIDs: []")
	var owners map[string]any
	decodeJSON(t, "container-parent-owners -j", s.ok("container-parent-owners", "-j", "ctr"), &owners)
	if owners["ID"] != ctr {
		t.Fatalf("container-parent-owners -j: %v", owners)
	}
	s.fails(1, "", "container-parent-owners", "no-such-container")

	// Container big data.
	testBigDataRoundTrip(t, s, bigDataCase{kind: "container", ref: "ctr",
		fileKey: "state", fileData: "cdata", stdinKey: "Other Key", stdinData: "more"})
	wantLines(t, "get-container-data-size", s.ok("get-container-data-size", "ctr", "state"), "5")
	wantLines(t, "getcontainerdatasize", s.ok("getcontainerdatasize", "ctr", "Other Key"), "4")
	wantLines(t, "get-container-data-digest", s.ok("get-container-data-digest", "ctr", "state"), fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("cdata"))))
	wantLines(t, "getcontainerdatadigest", s.ok("getcontainerdatadigest", "ctr", "Other Key"), fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("more"))))
	s.fails(1, "container not known", "get-container-data", "no-such-container", "state")
	s.fails(1, "", "get-container-data-digest", "ctr", "no-such-key")

	for _, cmd := range []string{"get-container-dir", "getcontainerdir"} {
		wantLines(t, cmd, s.ok(cmd, "ctr"), filepath.Join(s.graph, s.driver+"-containers", ctr, "userdata"))
	}
	for _, cmd := range []string{"get-container-run-dir", "getcontainerrundir"} {
		wantLines(t, cmd, s.ok(cmd, "ctr"), filepath.Join(s.run, s.driver+"-containers", ctr, "userdata"))
	}
	s.fails(1, "container not known", "get-container-dir", "no-such-container")
}
