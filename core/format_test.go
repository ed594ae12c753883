package core

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pluggable-storage/storage/archive"
)

// compressWith compresses b with c: in Go where archive can, else with the system tool.
func compressWith(t *testing.T, b []byte, c archive.Compression) []byte {
	t.Helper()
	switch c {
	case archive.Bzip2, archive.Xz:
		tool := map[archive.Compression]string{archive.Bzip2: "bzip2", archive.Xz: "xz"}[c]
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
		cmd := exec.Command(tool, "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var buf bytes.Buffer
	w, err := archive.CompressStream(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestApplyDetectsEveryCompression(t *testing.T) {
	s, _ := openStore(t)
	plain := sampleTar(t)
	for _, c := range []archive.Compression{archive.Uncompressed, archive.Gzip, archive.Bzip2, archive.Xz, archive.Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			input := compressWith(t, plain, c)
			l, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(input))
			if err != nil {
				t.Fatal(err)
			}
			if l.CompressionType != c || l.CompressedDigest != digest.FromBytes(input) || l.UncompressedDigest != digest.FromBytes(plain) {
				t.Errorf("layer %v %s %s", l.CompressionType, l.CompressedDigest, l.UncompressedDigest)
			}
			rc, err := s.Diff(ctx, "", l.ID, DiffOptions{Compression: ptr(archive.Uncompressed)})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, plain) {
				t.Error("uncompressed diff differs from the applied tar")
			}
		})
	}
}

func TestApplyDiffToExistingLayer(t *testing.T) {
	s, _ := openStore(t)
	_, err := s.CreateLayer(ctx, LayerOptions{Names: []string{"target"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tarball := makeTar(t, tarEntry{name: "x", body: "12345", uid: 7, gid: 8})
	n, err := s.ApplyDiff(ctx, "target", bytes.NewReader(tarball))
	if err != nil || n != 5 {
		t.Fatalf("apply: %d %v", n, err)
	}
	got, _ := s.Layer("target")
	if got.UncompressedDigest != digest.FromBytes(tarball) || !slices.Equal(got.UIDs, []uint32{7}) || !slices.Equal(got.GIDs, []uint32{8}) {
		t.Errorf("after apply %+v", got)
	}
	rc, err := s.Diff(ctx, "", "target", DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(out, tarball) {
		t.Error("diff after apply is not the applied tar")
	}
	// A bad tar leaves the layer's record as it was.
	if _, err := s.ApplyDiff(ctx, "target", bytes.NewReader([]byte("garbage garbage garbage"))); err == nil {
		t.Fatal("garbage applied")
	}
	if again, _ := s.Layer("target"); again.UncompressedDigest != got.UncompressedDigest || again.incomplete() {
		t.Errorf("record changed by a failed apply: %+v", again)
	}
}

func TestDuplicateNameOnLoadIsDroppedFromEarlierItem(t *testing.T) {
	opts := testOptions(t.TempDir())
	path := filepath.Join(opts.GraphRoot, "vfs-images", "images.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte(`[{"id":"first","names":["shared","mine"]},{"id":"second","names":["shared"]}]`), 0o600)
	s := openWith(t, opts)
	img, err := s.Image("shared")
	if err != nil || img.ID != "second" {
		t.Fatalf("shared resolves to %v %v", img, err)
	}
	if n, _ := s.Names("first"); !slices.Equal(n, []string{"mine"}) {
		t.Errorf("first keeps %v", n)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Count(raw, []byte(`"shared"`)) != 1 {
		t.Errorf("RW open did not re-save the fixed names: %s", raw)
	}
}

func TestLockTokensChangeOnEveryWrite(t *testing.T) {
	s, opts := openStore(t)
	l, err := s.CreateLayer(ctx, LayerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := s.CreateImage(ctx, ImageOptions{TopLayer: l.ID})
	for _, tc := range []struct {
		lock  string
		write func() error
	}{
		{filepath.Join(opts.GraphRoot, "vfs-layers", "layers.lock"), func() error { return s.SetMetadata(l.ID, "x") }},
		{filepath.Join(opts.GraphRoot, "vfs-images", "images.lock"), func() error { return s.SetMetadata(img.ID, "y") }},
		{filepath.Join(opts.GraphRoot, "vfs-containers", "containers.lock"), func() error {
			_, err := s.CreateContainer(ctx, img.ID, ContainerOptions{})
			return err
		}},
		{filepath.Join(opts.RunRoot, "vfs-layers", "mountpoints.lock"), func() error { _, err := s.Mount(ctx, l.ID, MountOptions{}); return err }},
	} {
		before, _ := os.ReadFile(tc.lock)
		if err := tc.write(); err != nil {
			t.Fatal(err)
		}
		after, err := os.ReadFile(tc.lock)
		if err != nil || len(after) != 64 || bytes.Equal(before, after) {
			t.Errorf("%s: token did not change (%d bytes, %v)", tc.lock, len(after), err)
		}
	}
}

func TestDriverAutoPick(t *testing.T) {
	opts := testOptions(t.TempDir())
	s := openWith(t, opts)
	s.Close()
	// An existing driver home in the graph root wins, without starting a plugin.
	opts.Driver = ""
	s2 := openWith(t, opts)
	if s2.DriverName() != "vfs" || s2.DriverStarted() {
		t.Errorf("picked %q (started %v), want vfs without a start", s2.DriverName(), s2.DriverStarted())
	}
	// A fresh root: the first of the priority list whose plugin initialises.
	fresh := testOptions(t.TempDir())
	fresh.Driver = ""
	fresh.DriverPriority = []string{"nosuchdriver", "vfs"}
	s3 := openWith(t, fresh)
	if s3.DriverName() != "vfs" {
		t.Errorf("picked %q", s3.DriverName())
	}
	fresh2 := testOptions(t.TempDir())
	fresh2.Driver = ""
	fresh2.DriverPriority = []string{"nosuchdriver"}
	if _, err := Open(ctx, fresh2); !errors.Is(err, ErrNoDriver) {
		t.Errorf("no usable driver: %v", err)
	}
}
