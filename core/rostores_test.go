package core

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestAdditionalReadOnlyImageStore(t *testing.T) {
	roOpts := testOptions(t.TempDir())
	ro := openWith(t, roOpts)
	l, err := ro.CreateLayer(ctx, LayerOptions{Names: []string{"ro-layer"}}, bytes.NewReader(sampleTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := ro.CreateImage(ctx, ImageOptions{TopLayer: l.ID, Names: []string{"ro-img"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.SetImageBigData(img.ID, "manifest", []byte("mf"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Shutdown(ctx, false); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	roImages, _ := os.ReadFile(filepath.Join(roOpts.GraphRoot, "vfs-images", "images.json"))

	opts := testOptions(t.TempDir())
	opts.DriverOptions = []string{"vfs.imagestore=" + roOpts.GraphRoot}
	s := openWith(t, opts)
	got, err := s.Image("ro-img")
	if err != nil || !got.ReadOnly || got.TopLayer != l.ID {
		t.Fatalf("read-only image %+v %v", got, err)
	}
	if gl, err := s.Layer("ro-layer"); err != nil || !gl.ReadOnly {
		t.Fatalf("read-only layer %+v %v", gl, err)
	}
	if b, err := s.ImageBigData("ro-img", "manifest"); err != nil || string(b) != "mf" {
		t.Fatalf("big data %q %v", b, err)
	}
	if imgs, _ := s.Images(); len(imgs) != 1 {
		t.Fatalf("images %+v", imgs)
	}
	if s.DriverStarted() {
		t.Fatal("reading the read-only store started the driver")
	}
	for name, write := range map[string]func() error{
		"delete image": func() error { _, err := s.DeleteImage(ctx, "ro-img", true); return err },
		"delete layer": func() error { return s.DeleteLayer(ctx, l.ID) },
		"metadata":     func() error { return s.SetMetadata("ro-img", "x") },
		"big data":     func() error { return s.SetImageBigData("ro-img", "k", []byte("v"), nil) },
		"mount rw":     func() error { _, err := s.Mount(ctx, l.ID, MountOptions{}); return err },
		"delete":       func() error { return s.Delete(ctx, "ro-img") },
	} {
		if err := write(); !errors.Is(err, ErrStoreIsReadOnly) {
			t.Errorf("%s: %v, want ErrStoreIsReadOnly", name, err)
		}
	}
	// A container on the read-only image: its layer lives here, its parent there.
	c, err := s.CreateContainer(ctx, "ro-img", ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Mount(ctx, c.ID, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(p, "etc/hello")); err != nil || string(b) != "hello world\n" {
		t.Fatalf("read through container %q %v", b, err)
	}
	if _, err := s.Unmount(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteContainer(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// Names may change: the image is pulled up into this store, big data included.
	if err := s.AddNames("ro-img", []string{"local-name"}); err != nil {
		t.Fatal(err)
	}
	up, err := s.Image("local-name")
	if err != nil || up.ReadOnly || !slices.Equal(up.Names, []string{"local-name", "ro-img"}) {
		t.Fatalf("pulled-up image %+v %v", up, err)
	}
	if b, err := s.ImageBigData("local-name", "manifest"); err != nil || string(b) != "mf" {
		t.Fatalf("pulled-up big data %q %v", b, err)
	}
	if now, _ := os.ReadFile(filepath.Join(roOpts.GraphRoot, "vfs-images", "images.json")); !bytes.Equal(now, roImages) {
		t.Error("the read-only store was written")
	}
}

func TestSplitImageStore(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	plain := openWith(t, opts)
	old, err := plain.CreateImage(ctx, ImageOptions{Names: []string{"made-before"}})
	if err != nil {
		t.Fatal(err)
	}
	plain.Close()

	opts.ImageStore = filepath.Join(dir, "split")
	s := openWith(t, opts)
	roLayer, err := s.CreateLayer(ctx, LayerOptions{ReadOnly: true}, bytes.NewReader(sampleTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	rwLayer, err := s.CreateLayer(ctx, LayerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.CreateImage(ctx, ImageOptions{TopLayer: roLayer.ID, Names: []string{"split-img"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImageBigData(img.ID, "manifest", []byte("m"), nil); err != nil {
		t.Fatal(err)
	}
	var splitLayers, graphLayers, splitImages, graphImages []map[string]any
	readJSON(t, filepath.Join(opts.ImageStore, "vfs-layers", "layers.json"), &splitLayers)
	readJSON(t, filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"), &graphLayers)
	readJSON(t, filepath.Join(opts.ImageStore, "vfs-images", "images.json"), &splitImages)
	readJSON(t, filepath.Join(opts.GraphRoot, "vfs-images", "images.json"), &graphImages)
	if len(splitLayers) != 1 || splitLayers[0]["id"] != roLayer.ID || len(graphLayers) != 1 || graphLayers[0]["id"] != rwLayer.ID {
		t.Errorf("layers: split %v graph %v", splitLayers, graphLayers)
	}
	if len(splitImages) != 1 || splitImages[0]["id"] != img.ID || len(graphImages) != 1 || graphImages[0]["id"] != old.ID {
		t.Errorf("images: split %v graph %v", splitImages, graphImages)
	}
	for _, p := range []string{
		filepath.Join(opts.ImageStore, "vfs-layers", roLayer.ID+".tar-split.gz"),
		filepath.Join(opts.ImageStore, "vfs-images", img.ID, "manifest"),
		filepath.Join(opts.ImageStore, "vfs-layers", "layers.lock"),
		filepath.Join(opts.ImageStore, "vfs-images", "images.lock"),
	} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	if d, err := s.ImageDir(img.ID); err != nil || d != filepath.Join(opts.ImageStore, "vfs-images", img.ID, "userdata") {
		t.Errorf("image dir %s %v", d, err)
	}
	rc, err := s.Diff(ctx, "", roLayer.ID, DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, sampleTar(t)) {
		t.Error("diff of a split-store layer is not the applied tar")
	}
	if _, err := s.CreateContainer(ctx, "split-img", ContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := openWith(t, opts)
	imgs, _ := s2.Images()
	if len(imgs) != 2 {
		t.Fatalf("images after reopen %+v", imgs)
	}
	if _, err := s2.DeleteImage(ctx, "made-before", true); err != nil {
		t.Fatalf("image of the graph root not deletable: %v", err)
	}
	if got, err := s2.ImageBigData("split-img", "manifest"); err != nil || string(got) != "m" {
		t.Fatalf("big data after reopen %q %v", got, err)
	}
}
