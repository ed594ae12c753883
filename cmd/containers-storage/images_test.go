package main

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func (s *store) idOf(kind, ref string) string {
	s.t.Helper()
	var items []struct {
		ID string `json:"id"`
	}
	decodeJSON(s.t, kind+" -j "+ref, s.ok(kind, "-j", ref), &items)
	if len(items) != 1 {
		s.t.Fatalf("%s -j %s: %d items", kind, ref, len(items))
	}
	return items[0].ID
}

func testImageCommands(t *testing.T, s *store) {
	t.Helper()
	wantEmptyList(t, s, "images")
	top := s.idOf("layer", "imported")
	dir := t.TempDir()
	meta := writeFile(t, dir, "meta", []byte("from-file"))
	out := s.ok("create-image", "-n", "img", "-n", "img:latest", "-f", meta, "imported")
	img := lines(out)[0]
	if !hexID.MatchString(img) {
		t.Fatalf("generated image ID %q", img)
	}
	wantLines(t, "create-image", out, img, "\timg", "\timg:latest")

	var other imageJSON
	dgst := "sha256:" + strings.Repeat("ab", 32)
	decodeJSON(t, "create-image -j", s.ok("createimage", "-j", "--id", "image-two", "-d", dgst, "-m", "meta2", "-n", "img2", "l2"), &other)
	if other.ID != "image-two" || other.Digest != dgst || other.Metadata != "meta2" || other.TopLayer != "layer-two" {
		t.Fatalf("create-image -j: %+v", other)
	}
	// A layerless image: no argument, or "".
	var bare imageJSON
	decodeJSON(t, "create-image \"\"", s.ok("create-image", "-j", "-n", "layerless", ""), &bare)
	if bare.TopLayer != "" {
		t.Fatalf("layerless image has top layer %q", bare.TopLayer)
	}
	s.ok("create-image", "-n", "layerless2")

	// Image big data (manifest digests feed Digests).
	manifest := []byte(`{"schemaVersion":2}`)
	manDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(manifest))
	testBigDataRoundTrip(t, s, bigDataCase{kind: "image", ref: "img",
		fileKey: "manifest", fileData: string(manifest), stdinKey: "Config Key", stdinData: "config-bytes"})
	wantLines(t, "get-image-data-size", s.ok("get-image-data-size", "img", "manifest"), fmt.Sprint(len(manifest)))
	wantLines(t, "getimagedatasize", s.ok("getimagedatasize", "img", "Config Key"), "12")
	wantLines(t, "get-image-data-digest", s.ok("get-image-data-digest", "img", "manifest"), manDigest)
	wantLines(t, "getimagedatadigest", s.ok("getimagedatadigest", "img", "Config Key"), fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("config-bytes"))))
	s.fails(1, "", "get-image-data", "img", "no-such-key")
	s.fails(1, "image not known", "get-image-data-size", "no-such-image", "manifest")
	s.fails(1, "image not known", "list-image-data", "no-such-image")

	// image: plain lines, JSON, and a miss.
	got := lines(s.ok("image", "img"))
	wantPrefix := []string{"ID: " + img, "Name: img", "Name: img:latest", "Top Layer: " + top, "Digest: " + manDigest, "Data: manifest", "Data: Config Key"}
	if len(got) != len(wantPrefix)+1 {
		t.Fatalf("image: %q", got)
	}
	for i, w := range wantPrefix {
		if got[i] != w {
			t.Fatalf("image line %d = %q, want %q", i+1, got[i], w)
		}
	}
	if !regexp.MustCompile(`^Size: \d+$`).MatchString(got[len(got)-1]) {
		t.Fatalf("image size line %q", got[len(got)-1])
	}
	var imgs []imageJSON
	decodeJSON(t, "image -j", s.ok("image", "-j", "img", "img2"), &imgs)
	if len(imgs) != 2 || imgs[0].ID != img || imgs[1].ID != "image-two" || imgs[0].Digest != manDigest {
		t.Fatalf("image -j: %+v", imgs)
	}
	if strings.Contains(s.ok("image", "-j", "img"), `"Digests"`) {
		t.Fatalf("image -j shows the Digests list")
	}
	if r := s.cli("image", "img", "no-such-image"); r.code != 1 || r.stderr != "" || !strings.HasPrefix(r.stdout, "ID: "+img+"\n") {
		t.Fatalf("image with a missing image: %v", r)
	}

	// images, -q, -j.
	listing := lines(s.ok("images"))
	if len(listing) < 6 || listing[0] != img || listing[1] != "\tname: img" || listing[2] != "\tname: img:latest" ||
		listing[3] != "\tdigest: "+manDigest || listing[4] != "\tdata: manifest" || listing[5] != "\tdata: Config Key" {
		t.Fatalf("images: %q", listing)
	}
	if !strings.Contains(strings.Join(listing, "\n"), "image-two\n\tname: img2\n\tdigest: "+dgst+"\n") {
		t.Fatalf("images lacks image-two: %q", listing)
	}
	quiet := lines(s.ok("images", "-q"))
	if len(quiet) != 4 || quiet[0] != img || quiet[1] != "image-two" {
		t.Fatalf("images -q: %q", quiet)
	}
	decodeJSON(t, "images -j", s.ok("images", "-j"), &imgs)
	if len(imgs) != 4 {
		t.Fatalf("images -j: %+v", imgs)
	}

	// images-by-digest: validated first; no match is empty output and success.
	wantLines(t, "images-by-digest", s.ok("images-by-digest", "-q", manDigest), img)
	wantLines(t, "images-by-digest (explicit digest)", s.ok("images-by-digest", dgst), "image-two", "\tname: img2", "\tdigest: "+dgst)
	decodeJSON(t, "images-by-digest -j", s.ok("images-by-digest", "-j", dgst), &imgs)
	if len(imgs) != 1 || imgs[0].ID != "image-two" {
		t.Fatalf("images-by-digest -j: %+v", imgs)
	}
	none := "sha256:" + strings.Repeat("0", 64)
	wantEmptyList(t, s, "images-by-digest", none)
	r := s.fails(1, "not-a-digest: ", "images-by-digest", "not-a-digest")
	if r.stdout != "" {
		t.Fatalf("images-by-digest with a bad digest printed %q", r.stdout)
	}

	// Image directories.
	for _, cmd := range []string{"get-image-dir", "getimagedir"} {
		wantLines(t, cmd, s.ok(cmd, "img"), filepath.Join(s.graph, s.driver+"-images", img, "userdata"))
	}
	for _, cmd := range []string{"get-image-run-dir", "getimagerundir"} {
		wantLines(t, cmd, s.ok(cmd, "img"), filepath.Join(s.run, s.driver+"-images", img, "userdata"))
	}

	s.fails(1, "that name is already in use", "create-image", "-n", "img")
	s.fails(1, "layer not known", "create-image", "no-such-layer")
}
