package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ulikunitz/xz"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
)

// hangGuard is how long a regression test waits for a call that used to hang before it
// declares the hang. It bounds the test; it is not a timing assertion.
const hangGuard = 10 * time.Second

// within runs fn in a goroutine and returns its error, failing the test if fn has not returned
// after hangGuard.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(hangGuard):
		// Not t.Fatal: the hung call holds the Store, so the test's cleanup would hang too.
		panic(fmt.Sprintf("%s: %s still blocked after %v: hang", t.Name(), what, hangGuard))
	}
}

func xzBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Diff of a layer with a tar-split used to deadlock when the compression was one
// CompressStream cannot write: the error path closed the tar-split stream, whose Close took the
// Store mutex Diff still held.
func TestDiffUnsupportedCompressionDeadlock(t *testing.T) {
	s, _ := openStore(t)
	plain := sampleTar(t)
	plainLayer, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	xzLayer, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(xzBytes(t, plain)))
	if err != nil {
		t.Fatal(err)
	}
	if xzLayer.CompressionType != archive.Xz {
		t.Fatalf("layer from an xz tar recorded compression %v", xzLayer.CompressionType)
	}
	for _, tc := range []struct {
		name     string
		layer    string
		asked    *archive.Compression
		wantName string
	}{
		{"asked bzip2", plainLayer.ID, ptr(archive.Bzip2), "bzip2"},
		{"asked xz", plainLayer.ID, ptr(archive.Xz), "xz"},
		{"recorded xz", xzLayer.ID, nil, "xz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := within(t, "Diff", func() error {
				rc, err := s.Diff(ctx, "", tc.layer, DiffOptions{Compression: tc.asked})
				if err == nil {
					rc.Close()
				}
				return err
			})
			if !errors.Is(err, errdefs.ErrNotSupported) {
				t.Fatalf("Diff = %v, want ErrNotSupported", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.layer) || !strings.Contains(msg, tc.wantName) {
				t.Errorf("error %q does not name the layer and the compression %s", msg, tc.wantName)
			}
			// Nothing was mounted for the refused diff, and the store still works.
			if n, err := s.Mounted(tc.layer); err != nil || n != 0 {
				t.Errorf("after the refused diff: mount count %d, %v", n, err)
			}
			rc, err := s.Diff(ctx, "", tc.layer, DiffOptions{Compression: ptr(archive.Uncompressed)})
			if err != nil {
				t.Fatalf("uncompressed Diff after the refused one: %v", err)
			}
			got, err := io.ReadAll(rc)
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
			if err != nil || !bytes.Equal(got, plain) {
				t.Errorf("uncompressed Diff after the refused one: %d bytes, %v", len(got), err)
			}
		})
	}
}

// syncBuffer is a log sink safe for the plugin's and the store's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// chattr sets or clears the immutable attribute of path, skipping the test if the tool or the
// file system cannot.
func chattr(t *testing.T, flag, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Skipf("chattr %s %s (needs chattr and a file system with the immutable attribute): %v: %s", flag, path, err, out)
	}
}

// addRecord adds a layer record by hand, as another tool (or a killed process) may have left
// it, and saves it.
func addRecord(t *testing.T, s *Store, l *Layer) {
	t.Helper()
	end, err := s.begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer end()
	if l.Created.IsZero() {
		l.Created = time.Now().UTC()
	}
	s.layers.t.add(l)
	if err := s.layers.save(); err != nil {
		t.Fatal(err)
	}
}

// An incomplete layer the driver could not remove used to make every read-write Open fail with
// "remove incomplete layer…". Now Open logs it and opens; the record stays, flagged incomplete,
// visible to lookups and to Check, and each later read-write Open tries again.
func TestOpenFailsRemoveIncompleteLayer(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stick leaves an incomplete record that the driver cannot remove, and returns its
		// ID and a func that lets the driver remove it (nil: nothing will).
		stick func(t *testing.T, s *Store, opts Options) (id string, unstick func())
	}{
		{"immutable layer directory", func(t *testing.T, s *Store, opts Options) (string, func()) {
			l, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(sampleTar(t)))
			if err != nil {
				t.Fatal(err)
			}
			// Root cannot rename or delete an immutable directory: the driver's Remove fails.
			dir := filepath.Join(opts.GraphRoot, "vfs", "dir", l.ID)
			chattr(t, "+i", dir)
			t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
			// A delete killed after flagging the record.
			end, err := s.begin(true)
			if err != nil {
				t.Fatal(err)
			}
			s.layers.t.byID[l.ID].setIncomplete(true)
			err = s.layers.save()
			end()
			if err != nil {
				t.Fatal(err)
			}
			return l.ID, func() { chattr(t, "-i", dir) }
		}},
		{"driver refuses the layer ID", func(t *testing.T, s *Store, opts Options) (string, func()) {
			// An ID vfs cannot use as a directory name: its Remove is ErrInvalidArgument, as
			// zfs's Remove of a layer with dependent clones is ErrInUse.
			l := &Layer{ID: "not/a-dir-name"}
			l.setIncomplete(true)
			addRecord(t, s, l)
			return l.ID, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, opts := openStore(t)
			id, unstick := tc.stick(t, s, opts)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for round := 1; round <= 2; round++ {
				var logs syncBuffer
				opts.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs})
				s2, err := Open(ctx, opts)
				if err != nil {
					t.Fatalf("Open %d with an incomplete layer the driver cannot remove: %v", round, err)
				}
				if !strings.Contains(logs.String(), "[WARN]") || !strings.Contains(logs.String(), id) {
					t.Errorf("Open %d: no warning naming layer %s in the log:\n%s", round, id, logs.String())
				}
				if got, err := s2.Layer(id); err != nil || got.ID != id || !got.incomplete() {
					t.Errorf("Layer(%s) = %+v, %v; want the record, flagged incomplete", id, got, err)
				}
				all, err := s2.Layers()
				if err != nil || !slices.ContainsFunc(all, func(x Layer) bool { return x.ID == id }) {
					t.Errorf("Layers() = %d layers, %v; want the incomplete one listed", len(all), err)
				}
				// Other writes work, and keep the record.
				other, err := s2.CreateLayer(ctx, LayerOptions{}, nil)
				if err != nil {
					t.Fatalf("CreateLayer in a store with a stuck incomplete layer: %v", err)
				}
				if err := s2.DeleteLayer(ctx, other.ID); err != nil {
					t.Fatal(err)
				}
				report, err := s2.Check(ctx, CheckOptions{Quick: true})
				if err != nil {
					t.Fatal(err)
				}
				if errs := report.Layers[id]; !slices.ContainsFunc(errs, func(e error) bool { return errors.Is(e, ErrLayerIncomplete) }) {
					t.Errorf("Check reports %v for layer %s, want ErrLayerIncomplete", errs, id)
				}
				if err := s2.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if unstick == nil {
				return
			}
			// Once the driver can remove it, the next read-write Open does.
			unstick()
			opts.Logger = nil
			s3 := openWith(t, opts)
			if _, err := s3.Layer(id); !errors.Is(err, ErrLayerUnknown) {
				t.Errorf("after a successful retry Layer = %v, want ErrLayerUnknown", err)
			}
			ids, err := s3.StorageLayers(ctx)
			if err != nil || slices.Contains(ids, id) {
				t.Errorf("driver layers %v, %v: incomplete layer still in the driver", ids, err)
			}
		})
	}
}

// A Create the driver refused used to leave the new record flagged incomplete (the rollback's
// Remove was refused too), which then made every read-write Open fail.
func TestCreateLayerRefusedLeavesIncompleteLayer(t *testing.T) {
	s, opts := openStore(t)
	const id = "not/a-dir-name"
	_, err := s.CreateLayer(ctx, LayerOptions{ID: id}, nil)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), id) {
		t.Fatalf("CreateLayer with an ID vfs refuses = %v, want ErrInvalidArgument naming it", err)
	}
	if _, err := s.Layer(id); !errors.Is(err, ErrLayerUnknown) {
		t.Errorf("Layer after the refused create = %v, want ErrLayerUnknown", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openWith(t, opts)
	if all, err := s2.Layers(); err != nil || len(all) != 0 {
		t.Errorf("layers after reopening: %v, %v; want none", all, err)
	}
}

// A delete the driver refused (zfs: a layer with dependent clones) used to leave the layer
// flagged incomplete, which then made every read-write Open fail. Now the record is restored.
func TestDeleteRefusedByDriverLeavesLayerIncomplete(t *testing.T) {
	s, opts := openStore(t)
	const id = "not/a-dir-name"
	addRecord(t, s, &Layer{ID: id, Names: []string{"refused"}})
	err := s.Delete(ctx, "refused")
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "delete layer "+id) {
		t.Fatalf("Delete refused by the driver = %v, want ErrInvalidArgument naming layer %s", err, id)
	}
	if l, err := s.Layer(id); err != nil || l.incomplete() {
		t.Errorf("after the refused delete Layer = %+v, %v; want the record, complete", l, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	opts.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs})
	s2 := openWith(t, opts)
	if l, err := s2.Layer(id); err != nil || l.incomplete() {
		t.Errorf("after reopening Layer = %+v, %v; want the record, complete", l, err)
	}
	if strings.Contains(logs.String(), id) {
		t.Errorf("reopening tried to remove the restored layer:\n%s", logs.String())
	}
}

// startedReader reports its first Read on started.
type startedReader struct {
	r       io.Reader
	once    sync.Once
	started chan struct{}
}

func (r *startedReader) Read(p []byte) (int, error) {
	r.once.Do(func() { close(r.started) })
	return r.r.Read(p)
}

// Close used to wait for the Store mutex, so a CreateLayer reading a tar from a stream that
// never ends (a stdin left open) could not be aborted: Close blocked as long as it did.
func TestCloseBlocksOnCreateLayerReading(t *testing.T) {
	opts := testOptions(t.TempDir())
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // lets the abandoned Read return
	src := &startedReader{r: pr, started: make(chan struct{})}
	type result struct {
		l   *Layer
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := s.CreateLayer(ctx, LayerOptions{ID: "aborted"}, src)
		done <- result{l, err}
	}()
	select {
	case <-src.started:
	case <-time.After(hangGuard):
		t.Fatalf("CreateLayer did not start reading the diff within %v", hangGuard)
	}
	if err := within(t, "Close", s.Close); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case res := <-done:
		if res.err == nil {
			t.Fatalf("CreateLayer aborted by Close returned layer %+v and no error", res.l)
		}
		if !errors.Is(res.err, errdefs.ErrUnavailable) {
			t.Errorf("CreateLayer aborted by Close = %v, want ErrUnavailable", res.err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("CreateLayer still blocked %v after Close: hang", hangGuard)
	}
	if _, err := s.Layers(); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Layers after Close = %v, want ErrUnavailable", err)
	}

	// The abort left what a killed process leaves; the next read-write Open removes it.
	s2 := openWith(t, opts)
	if _, err := s2.Layer("aborted"); !errors.Is(err, ErrLayerUnknown) {
		t.Errorf("after reopening, Layer(aborted) = %v, want ErrLayerUnknown", err)
	}
	all, err := s2.Layers()
	if err != nil || len(all) != 0 {
		t.Errorf("after reopening, layers %v, %v; want none", all, err)
	}
	ids, err := s2.StorageLayers(ctx)
	if err != nil || len(ids) != 0 {
		t.Errorf("after reopening, driver layers %v, %v; want none", ids, err)
	}
	report, err := s2.Check(ctx, CheckOptions{})
	if err != nil || !report.Empty() {
		t.Errorf("after reopening, Check = %+v, %v", report, err)
	}
}
