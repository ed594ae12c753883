package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// tarOf builds an uncompressed tar with the given entries: a name ending in "/" is a
// directory, anything else a regular file with the given content.
func tarOf(t testing.TB, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg, Uid: 0, Gid: 0}
		if strings.HasSuffix(e[0], "/") {
			h.Mode, h.Size, h.Typeflag = 0o755, 0, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeJSON(t testing.TB, what, out string, v any) {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("%s: JSON output is not one line: %q", what, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: %q: %v", what, out, err)
	}
}

type layerJSON struct {
	ID           string   `json:"id"`
	Names        []string `json:"names"`
	Parent       string   `json:"parent"`
	MountLabel   string   `json:"mountlabel"`
	DiffDigest   string   `json:"diff-digest"`
	DiffSize     int64    `json:"diff-size"`
	Compression  int      `json:"compression"`
	BigDataNames []string `json:"big-data-names"`
}

type imageJSON struct {
	ID           string   `json:"id"`
	Digest       string   `json:"digest"`
	Names        []string `json:"names"`
	TopLayer     string   `json:"layer"`
	Metadata     string   `json:"metadata"`
	BigDataNames []string `json:"big-data-names"`
}

type containerJSON struct {
	ID       string   `json:"id"`
	Names    []string `json:"names"`
	Image    string   `json:"image"`
	Layer    string   `json:"layer"`
	Metadata string   `json:"metadata"`
}

// TestCommands runs every store command against each driver: plain and JSON outputs line by
// line, exit codes, empty stderr on success, and the error paths of SPEC-cli §3.
func TestCommands(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.name, func(t *testing.T) {
			s := newStore(t, d)
			testLayerCommands(t, s)
			testImageCommands(t, s)
			testContainerCommands(t, s)
			testNameAndMetadataCommands(t, s)
			testMountCommands(t, s)
			testDiffCommands(t, s)
			testDeleteCommands(t, s)
			testAdminCommands(t, s)
		})
	}
}

// bigDataCase is one item's pair of data items for testBigDataRoundTrip: one written from a -f
// file, one from stdin.
type bigDataCase struct {
	kind, ref           string // "layer", "image" or "container", and the item's name
	fileKey, fileData   string
	stdinKey, stdinData string
}

// testBigDataRoundTrip attaches both data items to the item, lists them (plain and -j) and
// reads each back, one to stdout and one to a -f file, using both spellings of the commands.
func testBigDataRoundTrip(t *testing.T, s *store, c bigDataCase) {
	t.Helper()
	dir := t.TempDir()
	s.ok("set-"+c.kind+"-data", "-f", writeFile(t, dir, "in", []byte(c.fileData)), c.ref, c.fileKey)
	if r := s.cliIn(c.stdinData, "set"+c.kind+"data", c.ref, c.stdinKey); r.code != 0 || r.stderr != "" {
		t.Fatalf("set-%s-data from stdin: %v", c.kind, r)
	}
	wantLines(t, "list-"+c.kind+"-data", s.ok("list-"+c.kind+"-data", c.ref), c.fileKey, c.stdinKey)
	var keys []string
	decodeJSON(t, "list"+c.kind+"data -j", s.ok("list"+c.kind+"data", "-j", c.ref), &keys)
	if len(keys) != 2 || keys[0] != c.fileKey || keys[1] != c.stdinKey {
		t.Fatalf("list-%s-data -j: %q", c.kind, keys)
	}
	if out := s.ok("get-"+c.kind+"-data", c.ref, c.fileKey); out != c.fileData {
		t.Fatalf("get-%s-data = %q", c.kind, out)
	}
	outFile := filepath.Join(dir, "out")
	s.ok("get"+c.kind+"data", "-f", outFile, c.ref, c.stdinKey)
	if b, _ := os.ReadFile(outFile); string(b) != c.stdinData {
		t.Fatalf("get-%s-data -f wrote %q", c.kind, b)
	}
}

// wantEmptyList checks that a list command (its name, then its arguments) prints nothing, and
// with -j prints null.
func wantEmptyList(t testing.TB, s *store, cmd string, args ...string) {
	t.Helper()
	if out := s.ok(append([]string{cmd}, args...)...); out != "" {
		t.Fatalf("%s with nothing to list: %q", cmd, out)
	}
	if out := s.ok(append([]string{cmd, "-j"}, args...)...); out != "null\n" {
		t.Fatalf("%s -j with nothing to list: %q", cmd, out)
	}
}
