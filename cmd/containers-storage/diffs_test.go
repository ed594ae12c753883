package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

func gzipOf(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testDiffCommands(t *testing.T, s *store) {
	t.Helper()
	dir := t.TempDir()
	tarData := tarOf(t, [2]string{"a.txt", "aaa"}, [2]string{"d/", ""}, [2]string{"d/b.txt", "bb"})
	s.ok("import-layer", "-n", "diffsrc", "-f", writeFile(t, dir, "l.tar", tarData))

	// changes: plain lines with %q paths, JSON with numeric kinds.
	got := lines(s.ok("changes", "diffsrc"))
	sort.Strings(got)
	want := []string{`Add "/a.txt"`, `Add "/d"`, `Add "/d/b.txt"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes = %q, want %q", got, want)
	}
	var ch []struct {
		Path string
		Kind int
	}
	decodeJSON(t, "changes -j", s.ok("changes", "-j", "diffsrc"), &ch)
	if len(ch) != 3 || ch[0].Kind != 1 {
		t.Fatalf("changes -j: %+v", ch)
	}
	// Against itself there are no changes: null.
	if out := s.ok("changes", "-j", "diffsrc", "diffsrc"); out != "null\n" {
		t.Fatalf("changes of a layer against itself: %q", out)
	}
	s.fails(1, "layer not known", "changes", "no-such-layer")

	size := strings.TrimSuffix(s.ok("diffsize", "diffsrc"), "\n")
	if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(size) {
		t.Fatalf("diffsize = %q", size)
	}
	if other := strings.TrimSuffix(s.ok("diff-size", "diffsrc"), "\n"); other != size {
		t.Fatalf("diff-size = %q, diffsize = %q", other, size)
	}
	s.fails(1, "layer not known", "diffsize", "no-such-layer")

	// diff of an unmodified imported layer is the original tar, byte for byte.
	if out := s.ok("diff", "diffsrc"); out != string(tarData) {
		t.Fatalf("diff differs from the imported tar (%d bytes, want %d)", len(out), len(tarData))
	}
	if out := s.ok("diff", "-u", "diffsrc"); out != string(tarData) {
		t.Fatal("diff -u differs from the imported tar")
	}
	outFile := filepath.Join(dir, "diff.tar")
	s.ok("diff", "-f", outFile, "diffsrc")
	if b, _ := os.ReadFile(outFile); !bytes.Equal(b, tarData) {
		t.Fatal("diff -f wrote something else than the imported tar")
	}
	for _, flag := range []string{"-c", "--gzip"} {
		if out := s.ok("diff", flag, "diffsrc"); !strings.HasPrefix(out, "\x1f\x8b") {
			t.Fatalf("diff %s is not gzip: %q", flag, out[:min(len(out), 8)])
		}
	}
	// A layer imported gzip-compressed diffs gzip-compressed by default.
	s.ok("import-layer", "-n", "gzsrc", "-f", writeFile(t, dir, "l.tar.gz", gzipOf(t, tarData)))
	if out := s.ok("diff", "gzsrc"); !strings.HasPrefix(out, "\x1f\x8b") {
		t.Fatal("diff of a gzip-imported layer is not gzip")
	}
	if out := s.ok("diff", "-u", "gzsrc"); out != string(tarData) {
		t.Fatal("diff -u of a gzip-imported layer differs from the tar")
	}
	s.fails(1, "layer not known", "diff", "no-such-layer")

	// applydiff, from a file and from stdin.
	s.ok("create-layer", "-n", "applied")
	s.ok("applydiff", "-f", writeFile(t, dir, "a.tar", tarOf(t, [2]string{"new.txt", "n"})), "applied")
	if r := s.cliIn(string(tarOf(t, [2]string{"more.txt", "m"})), "apply-diff", "applied"); r.code != 0 || r.stderr != "" {
		t.Fatalf("apply-diff from stdin: %v", r)
	}
	got = lines(s.ok("changes", "applied"))
	sort.Strings(got)
	if strings.Join(got, ",") != `Add "/more.txt",Add "/new.txt"` {
		t.Fatalf("changes after applydiff: %q", got)
	}
	s.fails(1, "", "applydiff", "-f", writeFile(t, dir, "junk", bytes.Repeat([]byte("junk"), 200)), "applied")
	s.fails(1, "layer not known", "applydiff", "-f", outFile, "no-such-layer")
	s.fails(1, "not supported", "applydiff-using-staging-dir", "applied", dir)
}

// TestDiffBzip2AndXz: diff -x writes xz (also the default for a layer imported from xz);
// bzip2, which the established tool does not support either, is a clear error.
func TestDiffBzip2AndXz(t *testing.T) {
	s := vfsStore(t)
	dir := t.TempDir()
	tarData := tarOf(t, [2]string{"a.txt", "aaa"})
	s.ok("import-layer", "-n", "src", "-f", writeFile(t, dir, "l.tar", tarData))
	unxz := func(what string, b []byte) []byte {
		t.Helper()
		r, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s is not xz: %v", what, err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return plain
	}
	for _, flag := range []string{"-x", "--xz"} {
		if got := unxz("diff "+flag, []byte(s.ok("diff", flag, "src"))); !bytes.Equal(got, tarData) {
			t.Fatalf("diff %s does not decompress to the imported tar", flag)
		}
	}
	outFile := filepath.Join(dir, "out.xz")
	s.ok("diff", "-x", "-f", outFile, "src")
	if b, _ := os.ReadFile(outFile); !bytes.Equal(unxz("diff -x -f", b), tarData) {
		t.Fatal("diff -x -f wrote something else")
	}
	for _, flag := range []string{"-b", "--bzip2", "--bz2"} {
		r := s.fails(1, "not supported", "diff", flag, "src")
		if r.stdout != "" {
			t.Fatalf("diff %s printed %d bytes", flag, len(r.stdout))
		}
	}

	// A layer imported from an xz stream diffs to xz by default.
	var xzData bytes.Buffer
	xw, err := xz.NewWriter(&xzData)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(tarData)
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	s.ok("import-layer", "-n", "xzsrc", "-f", writeFile(t, dir, "l.tar.xz", xzData.Bytes()))
	if got := unxz("diff of an xz layer", []byte(s.ok("diff", "xzsrc"))); !bytes.Equal(got, tarData) {
		t.Fatal("diff of an xz-imported layer does not decompress to the tar")
	}
	if out := s.ok("diff", "-u", "xzsrc"); out != string(tarData) {
		t.Fatal("diff -u of an xz-imported layer differs from the tar")
	}
	// Nothing was left mounted or locked.
	if out := s.ok("mounted", "src", "xzsrc"); out != "" {
		t.Fatalf("diff left layers mounted: %q", out)
	}
}
