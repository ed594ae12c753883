package core

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
)

var ctx = context.Background()

func TestLayerCreateFromTarRecordsContentMetadata(t *testing.T) {
	s, opts := openStore(t)
	plain := sampleTar(t)
	for _, tc := range []struct {
		name        string
		input       []byte
		compression archive.Compression
	}{
		{"plain", plain, archive.Uncompressed},
		{"gzip", gzipBytes(t, plain), archive.Gzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := s.CreateLayer(ctx, LayerOptions{Names: []string{"l-" + tc.name}}, bytes.NewReader(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			if len(l.ID) != 64 {
				t.Errorf("generated ID %q is not 64 hex", l.ID)
			}
			if l.CompressionType != tc.compression {
				t.Errorf("compression %v, want %v", l.CompressionType, tc.compression)
			}
			if want := digest.FromBytes(tc.input); l.CompressedDigest != want || l.CompressedSize != int64(len(tc.input)) {
				t.Errorf("compressed %s/%d, want %s/%d", l.CompressedDigest, l.CompressedSize, want, len(tc.input))
			}
			if want := digest.FromBytes(plain); l.UncompressedDigest != want || l.UncompressedSize != int64(len(plain)) {
				t.Errorf("uncompressed %s/%d, want %s/%d", l.UncompressedDigest, l.UncompressedSize, want, len(plain))
			}
			if !slices.Equal(l.UIDs, []uint32{0, 1000}) || !slices.Equal(l.GIDs, []uint32{0, 5, 1001}) {
				t.Errorf("uid/gid sets %v %v", l.UIDs, l.GIDs)
			}
			if l.incomplete() {
				t.Error("layer still flagged incomplete")
			}
			if _, err := os.Stat(filepath.Join(opts.GraphRoot, "vfs-layers", l.ID+".tar-split.gz")); err != nil {
				t.Errorf("tar-split: %v", err)
			}
			// Diff with the recorded compression, then uncompressed: byte-identical to the input.
			for _, c := range []*archive.Compression{nil, ptr(archive.Uncompressed)} {
				rc, err := s.Diff(ctx, "", l.ID, DiffOptions{Compression: c})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if c == nil && tc.compression == archive.Gzip {
					got = gunzip(t, got)
				}
				if !bytes.Equal(got, plain) {
					t.Errorf("diff (compression %v) is not byte-identical to the applied tar (%d vs %d bytes)", c, len(got), len(plain))
				}
			}
			if n, err := s.Mounted(l.ID); err != nil || n != 0 {
				t.Errorf("diff left the layer mounted: %d %v", n, err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	rc, _, err := archive.DecompressStream(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLayerLookupByIDNamePrefix(t *testing.T) {
	s, _ := openStore(t)
	a, err := s.CreateLayer(ctx, LayerOptions{ID: "aaaa1111", Names: []string{"first"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateLayer(ctx, LayerOptions{ID: "aaaa2222", Parent: "first"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  string
		want string
	}{
		{"aaaa1111", "aaaa1111"},
		{"first", "aaaa1111"},
		{"aaaa1", "aaaa1111"},
		{"aaaa2", "aaaa2222"},
		{"aaaa", ""}, // ambiguous
		{"zzz", ""},
	} {
		l, err := s.Layer(tc.ref)
		if tc.want == "" {
			if !errors.Is(err, ErrLayerUnknown) || !strings.Contains(err.Error(), "layer not known") {
				t.Errorf("Layer(%q) = %v, want layer not known", tc.ref, err)
			}
			continue
		}
		if err != nil || l.ID != tc.want {
			t.Errorf("Layer(%q) = %v %v, want %s", tc.ref, l, err, tc.want)
		}
	}
	if _, err := s.CreateLayer(ctx, LayerOptions{ID: "aaaa1111"}, nil); !errors.Is(err, ErrDuplicateID) || !strings.Contains(err.Error(), "that ID is already in use") {
		t.Errorf("duplicate ID: %v", err)
	}
	if _, err := s.CreateLayer(ctx, LayerOptions{Names: []string{"first"}}, nil); !errors.Is(err, ErrDuplicateName) || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("duplicate name: %v", err)
	}
	ls, err := s.Layers()
	if err != nil || len(ls) != 2 || ls[0].ID != "aaaa1111" || ls[1].Parent != "aaaa1111" {
		t.Fatalf("Layers: %+v %v", ls, err)
	}
	if s.DriverStarted() != true {
		t.Error("creating layers should have started the driver")
	}
}

func TestListingNeverStartsPlugin(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	s := openWith(t, opts)
	l, err := s.CreateLayer(ctx, LayerOptions{Names: []string{"base"}}, bytes.NewReader(sampleTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.CreateImage(ctx, ImageOptions{TopLayer: l.ID, Names: []string{"img"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImageBigData(img.ID, "manifest", []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateContainer(ctx, "img", ContainerOptions{Names: []string{"ctr"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImage(ctx, ImageOptions{TopLayer: l.ID, Names: []string{"unused"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := openWith(t, opts)
	steps := map[string]func() error{
		"Layers":       func() error { _, err := s2.Layers(); return err },
		"Layer":        func() error { _, err := s2.Layer("base"); return err },
		"Images":       func() error { _, err := s2.Images(); return err },
		"Image":        func() error { _, err := s2.Image("img"); return err },
		"Containers":   func() error { _, err := s2.Containers(); return err },
		"Container":    func() error { _, err := s2.Container("ctr"); return err },
		"Lookup":       func() error { _, _, err := s2.Lookup("ctr"); return err },
		"Names":        func() error { _, err := s2.Names("img"); return err },
		"AddNames":     func() error { return s2.AddNames("img", []string{"other"}) },
		"SetMetadata":  func() error { return s2.SetMetadata("base", "meta") },
		"Metadata":     func() error { _, err := s2.Metadata("base"); return err },
		"ImageBigData": func() error { _, err := s2.ImageBigData("img", "manifest"); return err },
		"SetCtrData":   func() error { return s2.SetContainerBigData("ctr", "config", []byte("x")) },
		"ByDigest":     func() error { _, err := s2.ImagesByDigest(digest.FromBytes([]byte("{}"))); return err },
		"Mounted":      func() error { _, err := s2.Mounted("ctr"); return err },
		"Version":      func() error { _, err := s2.Version(); return err },
		"SetLayerData": func() error { return s2.SetLayerBigData("base", "k", strings.NewReader("v")) },
		"DryRunDelete": func() error { _, err := s2.DeleteImage(ctx, "unused", false); return err },
	}
	for name, step := range steps {
		if err := step(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if s2.DriverStarted() {
			t.Fatalf("%s started the driver plugin", name)
		}
	}
}

func TestDeleteLayerRefusalsNameTheDependant(t *testing.T) {
	s, _ := openStore(t)
	base, err := s.CreateLayer(ctx, LayerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	child, err := s.CreateLayer(ctx, LayerOptions{Parent: base.ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.CreateImage(ctx, ImageOptions{TopLayer: child.ID})
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := s.CreateContainer(ctx, img.ID, ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref      string
		sentinel error
		names    string
	}{
		{base.ID, ErrLayerHasChildren, child.ID},
		{child.ID, ErrLayerHasChildren, ctr.LayerID}, // the container's layer is a child
		{ctr.LayerID, ErrLayerUsedByContainer, ctr.ID},
	} {
		err := s.DeleteLayer(ctx, tc.ref)
		if !errors.Is(err, tc.sentinel) || !errors.Is(err, errdefs.ErrInUse) || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("DeleteLayer(%s) = %v, want %v naming %s", tc.ref, err, tc.sentinel, tc.names)
		}
	}
	if _, err := s.CreateLayer(ctx, LayerOptions{Parent: ctr.LayerID}, nil); !errors.Is(err, ErrParentIsContainer) || !strings.Contains(err.Error(), "would-be parent layer is a container") {
		t.Errorf("layer on a container's layer: %v", err)
	}
	if _, err := s.DeleteImage(ctx, img.ID, true); !errors.Is(err, ErrImageUsedByContainer) || !strings.Contains(err.Error(), ctr.ID) {
		t.Errorf("DeleteImage used by container: %v", err)
	}
	if err := s.DeleteContainer(ctx, ctr.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLayer(ctx, child.ID); !errors.Is(err, ErrLayerUsedByImage) || !strings.Contains(err.Error(), img.ID) {
		t.Errorf("DeleteLayer top layer: %v", err)
	}
	// Dry run reports the layers only this image uses, top first, and changes nothing.
	gone, err := s.DeleteImage(ctx, img.ID, false)
	if err != nil || !slices.Equal(gone, []string{child.ID, base.ID}) {
		t.Fatalf("dry run: %v %v", gone, err)
	}
	if ls, _ := s.Layers(); len(ls) != 2 {
		t.Fatalf("dry run deleted layers: %d left", len(ls))
	}
	gone, err = s.DeleteImage(ctx, img.ID, true)
	if err != nil || !slices.Equal(gone, []string{child.ID, base.ID}) {
		t.Fatalf("delete image: %v %v", gone, err)
	}
	if ls, _ := s.Layers(); len(ls) != 0 {
		t.Fatalf("layers left: %+v", ls)
	}
	if ids, _ := s.StorageLayers(ctx); len(ids) != 0 {
		t.Fatalf("driver layers left: %v", ids)
	}
}

func TestDeleteImageKeepsSharedLayers(t *testing.T) {
	s, _ := openStore(t)
	base, _ := s.CreateLayer(ctx, LayerOptions{}, nil)
	mid, _ := s.CreateLayer(ctx, LayerOptions{Parent: base.ID}, nil)
	topA, _ := s.CreateLayer(ctx, LayerOptions{Parent: mid.ID}, nil)
	topB, _ := s.CreateLayer(ctx, LayerOptions{Parent: mid.ID}, nil)
	imgA, err := s.CreateImage(ctx, ImageOptions{TopLayer: topA.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImage(ctx, ImageOptions{TopLayer: topB.ID}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.DeleteImage(ctx, imgA.ID, true)
	if err != nil || !slices.Equal(gone, []string{topA.ID}) {
		t.Fatalf("got %v %v, want only %s", gone, err, topA.ID)
	}
}

func TestChangesAndDiffSize(t *testing.T) {
	s, _ := openStore(t)
	base, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(makeTar(t,
		tarEntry{name: "a", body: "one"},
		tarEntry{name: "b", body: "two"},
	)))
	if err != nil {
		t.Fatal(err)
	}
	child, err := s.CreateLayer(ctx, LayerOptions{Parent: base.ID}, bytes.NewReader(makeTar(t,
		tarEntry{name: "a", body: "uno!"},
		tarEntry{name: ".wh.b"},
		tarEntry{name: "c", body: "three"},
	)))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Changes(ctx, "", child.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []archive.Change{{Path: "/a", Kind: archive.ChangeModify}, {Path: "/b", Kind: archive.ChangeDelete}, {Path: "/c", Kind: archive.ChangeAdd}}
	if !slices.Equal(ch, want) {
		t.Errorf("changes %v, want %v", ch, want)
	}
	n, err := s.DiffSize(ctx, "", child.ID)
	if err != nil || n != int64(len("uno!")+len("three")) {
		t.Errorf("diff size %d %v", n, err)
	}
	// A diff against another layer than the parent comes from the driver.
	rc, err := s.Diff(ctx, base.ID, child.ID, DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	rc.Close()
	slices.Sort(names)
	if !slices.Equal(names, []string{".wh.b", "a", "c"}) {
		t.Errorf("driver diff entries %v", names)
	}
}

func TestApplyBadTarLeavesNoLayer(t *testing.T) {
	s, _ := openStore(t)
	good := sampleTar(t)
	for _, tc := range []struct {
		name  string
		input []byte
		text  string
	}{
		{"not a tar", bytes.Repeat([]byte("this is not a tar file at all. "), 40), "invalid tar header"},
		{"truncated tar", good[:700], "unexpected EOF"},
		{"truncated gzip", gzipBytes(t, good)[:60], "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateLayer(ctx, LayerOptions{Names: []string{"bad"}}, bytes.NewReader(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.text) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("got %v, want an invalid-argument error containing %q", err, tc.text)
			}
			if ls, _ := s.Layers(); len(ls) != 0 {
				t.Fatalf("layer left behind: %+v", ls)
			}
			if ids, _ := s.StorageLayers(ctx); len(ids) != 0 {
				t.Fatalf("driver layer left behind: %v", ids)
			}
		})
	}
}

func TestMountCountsAcrossStores(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	a := openWith(t, opts)
	l, err := a.CreateLayer(ctx, LayerOptions{Names: []string{"m"}}, bytes.NewReader(sampleTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := a.Mount(ctx, "m", MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(p1, "etc/hello"))
	if err != nil || string(data) != "hello world\n" {
		t.Fatalf("read through mount: %q %v", data, err)
	}
	b := openWith(t, opts)
	if n, err := b.Mounted(l.ID); err != nil || n != 1 {
		t.Fatalf("second store sees count %d %v, want 1", n, err)
	}
	p2, err := b.Mount(ctx, l.ID, MountOptions{})
	if err != nil || p2 != p1 {
		t.Fatalf("second mount %q %v, want %q", p2, err, p1)
	}
	if n, _ := a.Mounted(l.ID); n != 2 {
		t.Fatalf("first store sees count %d, want 2", n)
	}
	if still, err := a.Unmount(ctx, l.ID, false); err != nil || !still {
		t.Fatalf("unmount 1: %v %v", still, err)
	}
	if still, err := b.Unmount(ctx, l.ID, false); err != nil || still {
		t.Fatalf("unmount 2: %v %v", still, err)
	}
	if _, err := b.Unmount(ctx, l.ID, false); !errors.Is(err, ErrLayerNotMounted) {
		t.Fatalf("unmount of an unmounted layer: %v", err)
	}
	// Force drops every reference.
	for i := 0; i < 3; i++ {
		if _, err := a.Mount(ctx, l.ID, MountOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if still, err := b.Unmount(ctx, l.ID, true); err != nil || still {
		t.Fatalf("forced unmount: %v %v", still, err)
	}
	if n, _ := a.Mounted(l.ID); n != 0 {
		t.Fatalf("count after forced unmount %d", n)
	}
}

func TestMountCountSurvivesPluginRestart(t *testing.T) {
	s, opts := openStore(t)
	l, err := s.CreateLayer(ctx, LayerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, l.ID, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close() // stops the plugin; the count stays in the run root
	s2 := openWith(t, opts)
	if n, err := s2.Mounted(l.ID); err != nil || n != 1 {
		t.Fatalf("count after restart %d %v", n, err)
	}
	if still, err := s2.Unmount(ctx, l.ID, false); err != nil || still {
		t.Fatalf("unmount after restart: %v %v", still, err)
	}
}
