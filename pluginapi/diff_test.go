package pluginapi_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/internal/testdriver"
)

type tarFile struct {
	name string
	data []byte
}

func makeTar(t testing.TB, files []tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("diff is not a valid tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = data
	}
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// layerWith creates layer id holding files, through ApplyDiff.
func layerWith(t *testing.T, d pluginapi.Driver, id string, files []tarFile) {
	t.Helper()
	ctx := context.Background()
	if err := d.Create(ctx, id, "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, f := range files {
		want += int64(len(f.data))
	}
	n, err := d.ApplyDiff(ctx, id, "", bytes.NewReader(makeTar(t, files)))
	if err != nil {
		t.Fatalf("ApplyDiff(%s): %v", id, err)
	}
	if n != want {
		t.Fatalf("ApplyDiff(%s) = %d bytes, want %d", id, n, want)
	}
}

func TestDiffApplyRoundTrip(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			ctx := context.Background()
			for _, tc := range []struct {
				name  string
				files []tarFile
			}{
				{"empty", nil},
				{"small files", []tarFile{{"a", []byte("hello")}, {"b", nil}, {"c", random(t, 700)}}},
				{"several frames", []tarFile{{"big", random(t, 3<<20+12345)}, {"z", []byte("tail")}}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					src, dst := "src-"+strings.ReplaceAll(tc.name, " ", "-"), "dst-"+strings.ReplaceAll(tc.name, " ", "-")
					layerWith(t, d, src, tc.files)
					rc, err := d.Diff(ctx, src, "")
					if err != nil {
						t.Fatal(err)
					}
					diff, err := io.ReadAll(rc)
					if cerr := rc.Close(); cerr != nil {
						t.Fatal(cerr)
					}
					if err != nil {
						t.Fatalf("read diff: %v", err)
					}
					got := readTar(t, diff)
					if len(got) != len(tc.files) {
						t.Fatalf("diff has %d files, want %d", len(got), len(tc.files))
					}
					for _, f := range tc.files {
						if !bytes.Equal(got[f.name], f.data) {
							t.Fatalf("file %s differs after the round trip", f.name)
						}
					}
					layerWith(t, d, dst, tc.files)
					size, err := d.DiffSize(ctx, dst, "")
					if err != nil {
						t.Fatal(err)
					}
					var want int64
					for _, f := range tc.files {
						want += int64(len(f.data))
					}
					if size != want {
						t.Fatalf("DiffSize = %d, want %d", size, want)
					}
					changes, err := d.Changes(ctx, dst, "")
					if err != nil || len(changes) != len(tc.files) {
						t.Fatalf("Changes = %v, %v; want %d entries", changes, err, len(tc.files))
					}
				})
			}
		})
	}
}

// A diff cut by its writer must be an error from Read, never a clean EOF.
func TestDiffCutByFailingDriver(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			layerWith(t, d, "faildiff", []tarFile{{"big", random(t, 2*testdriver.MidDiffBytes)}})
			rc, err := d.Diff(context.Background(), "faildiff", "")
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			n, err := io.Copy(io.Discard, rc)
			if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), "asked to fail mid-diff") {
				t.Fatalf("read %d bytes, then %v; want ErrCorrupt carrying the driver's error", n, err)
			}
			if _, err := d.ListLayers(context.Background()); err != nil {
				t.Fatalf("call after a failed diff: %v", err)
			}
		})
	}
}

func TestDiffCutByDyingPlugin(t *testing.T) {
	c := openClient(t)
	ctx := context.Background()
	layerWith(t, c, "exitdiff", []tarFile{{"big", random(t, 2*testdriver.MidDiffBytes)}})
	pid := c.Pid()
	rc, err := c.Diff(ctx, "exitdiff", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if !errors.Is(err, errdefs.ErrCorrupt) || !errors.Is(err, pluginapi.ErrPluginDied) {
		t.Fatalf("read %d bytes, then %v; want ErrCorrupt and ErrPluginDied", n, err)
	}
	if !strings.Contains(err.Error(), `driver "test"`) || !strings.Contains(err.Error(), "exit status 9") {
		t.Fatalf("error %q does not name the driver and its exit status", err)
	}
	ids, err := c.ListLayers(ctx)
	if err != nil || len(ids) != 1 || ids[0] != "exitdiff" {
		t.Fatalf("ListLayers on the relaunched plugin = %v, %v; want [exitdiff] (Init replayed)", ids, err)
	}
	if c.Pid() == pid || c.Pid() == 0 {
		t.Fatalf("plugin pid %d after relaunch, was %d", c.Pid(), pid)
	}
}

// brokenReader yields r, then fails.
type brokenReader struct{ r io.Reader }

var errSourceBroke = errors.New("source broke")

func (b *brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errSourceBroke
	}
	return n, err
}

func TestApplyDiffCutByHost(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			ctx := context.Background()
			if err := d.Create(ctx, "cut", "", pluginapi.CreateOpts{}); err != nil {
				t.Fatal(err)
			}
			full := makeTar(t, []tarFile{{"big", random(t, 3<<20)}})
			_, err := d.ApplyDiff(ctx, "cut", "", &brokenReader{bytes.NewReader(full[:2<<20])})
			if !errors.Is(err, errSourceBroke) || !strings.Contains(err.Error(), "cut") {
				t.Fatalf("ApplyDiff from a broken source = %v, want the source's error naming the layer", err)
			}
			// The driver saw a cut stream, not a clean end of a shorter tar.
			last := statusValue(t, d, "LastApplyError")
			if !strings.Contains(last, "cut after") || !strings.Contains(last, "corrupt") {
				t.Fatalf("driver's ApplyDiff ended with %q, want a cut-stream ErrCorrupt error", last)
			}
		})
	}
}

// A tar whose end-of-archive marker comes early: the driver stops reading, the plugin drains the
// rest of the stream and checks the trailer.
func TestApplyDiffDrainsAfterDriver(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			ctx := context.Background()
			if err := d.Create(ctx, "drain", "", pluginapi.CreateOpts{}); err != nil {
				t.Fatal(err)
			}
			stream := append(makeTar(t, []tarFile{{"f", []byte("x")}}), make([]byte, 3<<20)...)
			n, err := d.ApplyDiff(ctx, "drain", "", bytes.NewReader(stream))
			if err != nil || n != 1 {
				t.Fatalf("ApplyDiff = %d, %v; want 1, nil", n, err)
			}
		})
	}
}

func TestDiffClosedEarly(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			ctx := context.Background()
			layerWith(t, d, "big", []tarFile{{"big", random(t, 4<<20)}})
			rc, err := d.Diff(ctx, "big", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("Close mid-stream: %v", err)
			}
			if _, err := d.Exists(ctx, "big"); err != nil {
				t.Fatalf("call after closing a diff early: %v", err)
			}
		})
	}
}

// killingReader yields r, killing the plugin once it has yielded after bytes.
type killingReader struct {
	r      io.Reader
	after  int
	read   int
	kill   func()
	killed bool
}

func (k *killingReader) Read(p []byte) (int, error) {
	if !k.killed && k.read >= k.after {
		k.killed = true
		k.kill()
	}
	n, err := k.r.Read(p)
	k.read += n
	return n, err
}

func TestApplyDiffToDyingPlugin(t *testing.T) {
	c := openClient(t)
	ctx := context.Background()
	if err := c.Create(ctx, "target", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	pid := c.Pid()
	full := makeTar(t, []tarFile{{"big", random(t, 6<<20)}})
	src := &killingReader{r: bytes.NewReader(full), after: 1 << 20, kill: func() { _ = syscall.Kill(pid, syscall.SIGKILL) }}
	_, err := c.ApplyDiff(ctx, "target", "", src)
	if !errors.Is(err, pluginapi.ErrPluginDied) || !strings.Contains(err.Error(), "apply diff to layer target") {
		t.Fatalf("ApplyDiff to a plugin killed mid-stream = %v, want ErrPluginDied naming the layer", err)
	}
	if ok, err := c.Exists(ctx, "target"); err != nil || !ok {
		t.Fatalf("Exists after relaunch = %v, %v", ok, err)
	}
}
