package core

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pluginDir holds the vfs plugin executable built by TestMain.
var pluginDir string

// TestMain builds the vfs driver plugin once (the store runs it as a real subprocess), and
// dispatches to a child role when the test binary is re-executed by a multi-process test.
func TestMain(m *testing.M) {
	if role := os.Getenv("CORE_TEST_CHILD"); role != "" {
		os.Exit(runChild(role))
	}
	dir, err := os.MkdirTemp("", "core-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := moduleRoot()
	if err == nil {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "containers-storage-driver-vfs"), "./plugins/vfs")
		cmd.Dir = root
		cmd.Stderr = os.Stderr
		err = cmd.Run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build vfs plugin:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	pluginDir = dir
	os.Setenv("CORE_TEST_PLUGINS", dir) // for example_test.go
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not in a module")
	}
	return filepath.Dir(mod), nil
}

// testOptions returns options for a store under dir using the vfs plugin.
func testOptions(dir string) Options {
	return Options{
		GraphRoot:  filepath.Join(dir, "graph"),
		RunRoot:    filepath.Join(dir, "run"),
		Driver:     "vfs",
		PluginDirs: []string{pluginDir},
	}
}

// openStore opens a vfs store in a new temp dir; the store is shut down and closed at the end
// of the test.
func openStore(t *testing.T) (*Store, Options) {
	t.Helper()
	opts := testOptions(t.TempDir())
	s := openWith(t, opts)
	return s, opts
}

func openWith(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if !s.closed.Load() {
			s.Shutdown(context.Background(), true)
		}
		s.Close()
	})
	return s
}

// tarEntry is one entry of a test tar.
type tarEntry struct {
	name     string
	body     string
	typ      byte
	mode     int64
	uid, gid int
	link     string
}

// makeTar builds an uncompressed tar. Directories have a trailing "/".
func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, Typeflag: e.typ,
			ModTime: time.Unix(1700000000, 0), Linkname: e.link, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// sampleTar is a small layer: a directory, two files with distinct owners, a symlink.
func sampleTar(t testing.TB) []byte {
	return makeTar(t,
		tarEntry{name: "etc/", typ: tar.TypeDir},
		tarEntry{name: "etc/hello", body: "hello world\n", uid: 1000, gid: 1001},
		tarEntry{name: "bin/", typ: tar.TypeDir},
		tarEntry{name: "bin/tool", body: "#!/bin/sh\necho tool\n", mode: 0o755, uid: 0, gid: 5},
		tarEntry{name: "link", typ: tar.TypeSymlink, link: "etc/hello"},
	)
}
