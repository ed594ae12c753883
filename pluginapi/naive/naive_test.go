package naive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
)

// dirLayers is a LayerDirs over plain directories (the naive differ only needs directories). It
// counts acquisitions so tests can check that every LayerDir is released exactly once.
type dirLayers struct {
	root       string
	mu         sync.Mutex
	held       map[string]int
	releaseErr error
}

func newDirLayers(t *testing.T) *dirLayers {
	return &dirLayers{root: t.TempDir(), held: map[string]int{}}
}

func (d *dirLayers) LayerDir(ctx context.Context, id string) (string, func() error, error) {
	dir := filepath.Join(d.root, id)
	if _, err := os.Stat(dir); err != nil {
		return "", nil, fmt.Errorf("layer %s: %w", id, errdefs.ErrNotFound)
	}
	d.mu.Lock()
	d.held[id]++
	d.mu.Unlock()
	var once sync.Once
	return dir, func() error {
		released := false
		once.Do(func() {
			released = true
			d.mu.Lock()
			d.held[id]--
			d.mu.Unlock()
		})
		if !released {
			return errors.New("released twice")
		}
		return d.releaseErr
	}, nil
}

func (d *dirLayers) create(t *testing.T, id string) string {
	t.Helper()
	dir := filepath.Join(d.root, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (d *dirLayers) assertReleased(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, n := range d.held {
		if n != 0 {
			t.Errorf("layer %s held %d times after the call", id, n)
		}
	}
}

func tarOf(t *testing.T, files map[string]string, whiteouts ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	for _, n := range append(sorted(names), whiteouts...) {
		body := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sorted(s []string) []string { sort.Strings(s); return s }

// copyTree gives child the parent's contents (what a full-copy driver's Create does).
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	var buf bytes.Buffer
	if err := archive.Tar(context.Background(), from, &buf, archive.TarOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Apply(context.Background(), to, &buf, archive.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestNaiveDiffer(t *testing.T) {
	ctx := context.Background()
	layers := newDirLayers(t)
	d := New(layers, archive.ApplyOptions{})

	layers.create(t, "base")
	baseTar := tarOf(t, map[string]string{"etc/passwd": "root", "etc/group": "root", "bin/sh": "#!"})
	n, err := d.ApplyDiff(ctx, "base", "", bytes.NewReader(baseTar))
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("ApplyDiff(base) = %d, want 10", n)
	}
	layers.assertReleased(t)

	child := layers.create(t, "child")
	copyTree(t, filepath.Join(layers.root, "base"), child)
	childTar := tarOf(t, map[string]string{"etc/passwd": "root+user", "usr/bin/new": "new"}, "etc/.wh.group")
	n, err = d.ApplyDiff(ctx, "child", "base", bytes.NewReader(childTar))
	if err != nil {
		t.Fatal(err)
	}
	if n != 12 {
		t.Errorf("ApplyDiff(child) = %d, want 12", n)
	}

	changes, err := d.Changes(ctx, "child", "base")
	if err != nil {
		t.Fatal(err)
	}
	want := []archive.Change{
		{Path: "/etc", Kind: archive.ChangeModify},
		{Path: "/etc/group", Kind: archive.ChangeDelete},
		{Path: "/etc/passwd", Kind: archive.ChangeModify},
		{Path: "/usr", Kind: archive.ChangeAdd},
		{Path: "/usr/bin", Kind: archive.ChangeAdd},
		{Path: "/usr/bin/new", Kind: archive.ChangeAdd},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("Changes = %v, want %v", changes, want)
	}
	size, err := d.DiffSize(ctx, "child", "base")
	if err != nil || size != 12 {
		t.Errorf("DiffSize = %d, %v; want 12 (= ApplyDiff's size)", size, err)
	}
	all, err := d.Changes(ctx, "base", "")
	if err != nil || len(all) != 5 {
		t.Errorf("Changes(base, \"\") = %v, %v; want 5 additions", all, err)
	}
	layers.assertReleased(t)

	// Diff then ApplyDiff onto a sibling of child reproduces child.
	rc, err := d.Diff(ctx, "child", "base")
	if err != nil {
		t.Fatal(err)
	}
	diff, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	layers.assertReleased(t)
	sibling := layers.create(t, "sibling")
	copyTree(t, filepath.Join(layers.root, "base"), sibling)
	if n, err := d.ApplyDiff(ctx, "sibling", "base", bytes.NewReader(diff)); err != nil || n != size {
		t.Errorf("ApplyDiff(sibling) = %d, %v; want %d", n, err, size)
	}
	if cs, err := d.Changes(ctx, "sibling", "child"); err != nil || len(cs) != 0 {
		t.Errorf("sibling differs from child: %v, %v", cs, err)
	}
	layers.assertReleased(t)
}

func TestNaiveDiffClosedEarlyReleases(t *testing.T) {
	ctx := context.Background()
	layers := newDirLayers(t)
	d := New(layers, archive.ApplyOptions{})
	dir := layers.create(t, "big")
	for i := 0; i < 64; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{'x'}, 64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := d.Diff(ctx, "big", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	layers.assertReleased(t)
}

func TestNaiveDiffFailureIsReadError(t *testing.T) {
	ctx := context.Background()
	layers := newDirLayers(t)
	layers.create(t, "l")
	d := New(layers, archive.ApplyOptions{})
	layers.releaseErr = fmt.Errorf("unmount failed: %w", errdefs.ErrInUse)
	rc, err := d.Diff(ctx, "l", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	if !errors.Is(err, errdefs.ErrInUse) {
		t.Errorf("read error = %v, want the release failure (ErrInUse)", err)
	}
	rc.Close()
	layers.assertReleased(t)
}

func TestNaiveErrors(t *testing.T) {
	ctx := context.Background()
	layers := newDirLayers(t)
	layers.create(t, "l")
	d := New(layers, archive.ApplyOptions{})
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"changes of missing layer", func() error { _, err := d.Changes(ctx, "nope", ""); return err }, errdefs.ErrNotFound},
		{"changes against missing parent", func() error { _, err := d.Changes(ctx, "l", "nope"); return err }, errdefs.ErrNotFound},
		{"diff of missing layer", func() error { _, err := d.Diff(ctx, "nope", ""); return err }, errdefs.ErrNotFound},
		{"diff against missing parent", func() error { _, err := d.Diff(ctx, "l", "nope"); return err }, errdefs.ErrNotFound},
		{"diff size of missing layer", func() error { _, err := d.DiffSize(ctx, "nope", ""); return err }, errdefs.ErrNotFound},
		{"apply to missing layer", func() error { _, err := d.ApplyDiff(ctx, "nope", "", bytes.NewReader(nil)); return err }, errdefs.ErrNotFound},
		{"apply hostile tar", func() error {
			_, err := d.ApplyDiff(ctx, "l", "", bytes.NewReader(tarOf(t, map[string]string{"../escape": "x"})))
			return err
		}, errdefs.ErrInvalidArgument},
		{"apply truncated tar", func() error {
			b := tarOf(t, map[string]string{"a": string(bytes.Repeat([]byte("x"), 2000))})
			_, err := d.ApplyDiff(ctx, "l", "", bytes.NewReader(b[:1000]))
			return err
		}, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want class %v", err, tc.want)
			}
			if err != nil && !bytes.Contains([]byte(err.Error()), []byte("layer ")) {
				t.Errorf("error %v does not name the layer", err)
			}
			layers.assertReleased(t)
		})
	}
	if _, err := os.Lstat(filepath.Join(layers.root, "escape")); err == nil {
		t.Errorf("hostile tar escaped the layer")
	}
}

// TestNaiveDiffOutlivesCallContext: over gRPC the Diff call's context ends when Diff returns,
// while the stream is still being read.
func TestNaiveDiffOutlivesCallContext(t *testing.T) {
	layers := newDirLayers(t)
	dir := layers.create(t, "l")
	for i := 0; i < 8; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), bytes.Repeat([]byte{'x'}, 128<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := New(layers, archive.ApplyOptions{}).Diff(ctx, "l", "")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading after the call's context ended: %v", err)
	}
	rc.Close()
	layers.assertReleased(t)
	if len(data) < 8*128<<10 {
		t.Errorf("diff is %d bytes, want at least %d", len(data), 8*128<<10)
	}
}

// TestNaiveDiffWriteTo: copying the stream with WriteTo (the export straight into the
// destination) gives the same bytes as reading it, releases the layers, and a stream closed
// without being read releases them too.
func TestNaiveDiffWriteTo(t *testing.T) {
	ctx := context.Background()
	layers := newDirLayers(t)
	dir := layers.create(t, "l")
	for i := 0; i < 4; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), bytes.Repeat([]byte{byte('a' + i)}, 100<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := New(layers, archive.ApplyOptions{})
	diff := func(t *testing.T) io.ReadCloser {
		t.Helper()
		rc, err := d.Diff(ctx, "l", "")
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}

	rc := diff(t)
	read, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()

	for _, tc := range []struct {
		name  string
		first int // bytes read before WriteTo
	}{
		{"not read before", 0},
		{"partly read before", 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := diff(t)
			wt, ok := rc.(io.WriterTo)
			if !ok {
				t.Fatal("the diff stream does not implement io.WriterTo")
			}
			head := make([]byte, tc.first)
			if _, err := io.ReadFull(rc, head); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			n, err := wt.WriteTo(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(buf.Len()) {
				t.Errorf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
			}
			if got := append(head, buf.Bytes()...); !bytes.Equal(got, read) {
				t.Errorf("WriteTo gave %d bytes that differ from the %d read", len(got), len(read))
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			layers.assertReleased(t)
		})
	}

	t.Run("closed unread", func(t *testing.T) {
		rc := diff(t)
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
		layers.assertReleased(t)
		if _, err := rc.Read(make([]byte, 10)); err == nil {
			t.Error("read after close succeeded")
		}
	})

	t.Run("destination fails", func(t *testing.T) {
		rc := diff(t)
		broken := errors.New("destination broken")
		_, err := rc.(io.WriterTo).WriteTo(failingWriter{broken})
		if !errors.Is(err, broken) {
			t.Errorf("WriteTo error = %v, want the destination's", err)
		}
		rc.Close()
		layers.assertReleased(t)
	})
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
