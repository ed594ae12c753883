package driverkit

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/naive"
)

var errTestNotInit = errdefs.Sentinel(errdefs.ErrUnavailable, "test driver not initialized")

// dirDriver is the smallest driver state ForwardDiffer serves: layers are directories under a
// root, and the naive differ over PlainDirs appears only at "Init".
type dirDriver struct {
	root string
	st   atomic.Pointer[dirState]
}

// dirState is what the test driver's "Init" establishes.
type dirState struct{ differ pluginapi.Differ }

func (s *dirState) getDiffer() pluginapi.Differ { return s.differ }

func (d *dirDriver) lookup(id string) (string, error) {
	p := filepath.Join(d.root, id)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

func (d *dirDriver) init() {
	d.st.Store(&dirState{differ: naive.New(PlainDirs(d.lookup), archive.ApplyOptions{WhiteoutFormat: archive.WhiteoutOCI})})
}

func (d *dirDriver) state() (*dirState, error) {
	st := d.st.Load()
	if st == nil {
		return nil, errTestNotInit
	}
	return st, nil
}

func (d *dirDriver) forward() pluginapi.Differ {
	return ForwardDiffer(d.state, (*dirState).getDiffer)
}

// TestForwardDifferBeforeInit: every method fails with get's error, wrapped with the
// operation and the layer ID.
func TestForwardDifferBeforeInit(t *testing.T) {
	fd := (&dirDriver{root: t.TempDir()}).forward()
	ctx := t.Context()
	cases := []struct {
		op   string
		call func() error
	}{
		{"diff layer L1", func() error { _, err := fd.Diff(ctx, "L1", ""); return err }},
		{"apply diff to layer L1", func() error { _, err := fd.ApplyDiff(ctx, "L1", "", strings.NewReader("")); return err }},
		{"changes of layer L1", func() error { _, err := fd.Changes(ctx, "L1", ""); return err }},
		{"diff size of layer L1", func() error { _, err := fd.DiffSize(ctx, "L1", ""); return err }},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, errTestNotInit) || !errors.Is(err, errdefs.ErrUnavailable) || !strings.HasPrefix(err.Error(), c.op+": ") {
				t.Fatalf("error %v, want %q wrapping the not-initialised error", err, c.op+": ...")
			}
		})
	}
}

// TestForwardDifferAfterInit: once get succeeds, the calls reach the naive differ over real
// directories, and a layer PlainDirs cannot find fails with its error.
func TestForwardDifferAfterInit(t *testing.T) {
	d := &dirDriver{root: t.TempDir()}
	fd := d.forward()
	d.init()
	ctx := t.Context()
	for _, id := range []string{"base", "child", "copy"} {
		if err := os.Mkdir(filepath.Join(d.root, id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.root, "child", "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	changes, err := fd.Changes(ctx, "child", "base")
	if err != nil || len(changes) != 1 || changes[0].Path != "/f" || changes[0].Kind != archive.ChangeAdd {
		t.Fatalf("Changes = %+v, %v; want one addition of /f", changes, err)
	}
	if n, err := fd.DiffSize(ctx, "child", "base"); err != nil || n != 5 {
		t.Fatalf("DiffSize = %d, %v; want 5", n, err)
	}
	rc, err := fd.Diff(ctx, "child", "base")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, rc)
	if err = errors.Join(err, rc.Close()); err != nil {
		t.Fatalf("read diff: %v", err)
	}
	if names := tarNames(t, buf.Bytes()); len(names) != 1 || names[0] != "f" {
		t.Fatalf("diff holds %q, want [f]", names)
	}
	if n, err := fd.ApplyDiff(ctx, "copy", "base", &buf); err != nil || n != 5 {
		t.Fatalf("ApplyDiff = %d, %v; want 5", n, err)
	}
	if data, err := os.ReadFile(filepath.Join(d.root, "copy", "f")); err != nil || string(data) != "hello" {
		t.Fatalf("applied file: %q, %v", data, err)
	}

	_, err = fd.Changes(ctx, "missing", "")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Changes of a missing layer: %v, want the lookup's ErrNotExist naming it", err)
	}
}

func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		names = append(names, h.Name)
	}
}

// TestPlainDirsRelease: the release does nothing, so the directory stays usable after it.
func TestPlainDirsRelease(t *testing.T) {
	dir := t.TempDir()
	p, release, err := PlainDirs(func(id string) (string, error) { return filepath.Join(dir, id), nil }).LayerDir(context.Background(), "x")
	if err != nil || p != filepath.Join(dir, "x") {
		t.Fatalf("LayerDir = %q, %v", p, err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("release touched the directory: %v", err)
	}
}
