package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

func TestContainerLifecycle(t *testing.T) {
	s, opts := openStore(t)
	top, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(sampleTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.CreateImage(ctx, ImageOptions{TopLayer: top.ID, Names: []string{"img"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateContainer(ctx, "img", ContainerOptions{Names: []string{"web"}, MountLabel: ""})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := s.Layer(c.LayerID)
	if err != nil || cl.Parent != top.ID || c.ImageID != img.ID {
		t.Fatalf("container layer %+v %v", cl, err)
	}
	if _, ok := c.Flags["MountLabel"]; !ok {
		t.Errorf("flags %v lack MountLabel", c.Flags)
	}
	if _, ok := c.Flags["ProcessLabel"]; !ok {
		t.Errorf("flags %v lack ProcessLabel", c.Flags)
	}
	if _, err := s.CreateContainer(ctx, "img", ContainerOptions{Names: []string{"web"}}); !errors.Is(err, ErrDuplicateName) || !strings.Contains(err.Error(), c.ID) {
		t.Errorf("duplicate container name: %v", err)
	}
	if _, err := s.CreateContainer(ctx, "nope", ContainerOptions{}); !errors.Is(err, ErrImageUnknown) || !strings.Contains(err.Error(), "image not known") {
		t.Errorf("unknown image: %v", err)
	}
	if err := s.SetContainerBigData("web", "config.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if d, err := s.ContainerBigDataDigest("web", "config.json"); err != nil || d != digest.FromString("{}") {
		t.Errorf("digest %s %v", d, err)
	}
	if n, err := s.ContainerBigDataSize("web", "config.json"); err != nil || n != 2 {
		t.Errorf("size %d %v", n, err)
	}
	dir, err := s.ContainerDir("web")
	if err != nil || dir != filepath.Join(opts.GraphRoot, "vfs-containers", c.ID, "userdata") {
		t.Errorf("dir %s %v", dir, err)
	}
	runDir, err := s.ContainerRunDir("web")
	if err != nil || runDir != filepath.Join(opts.RunRoot, "vfs-containers", c.ID, "userdata") {
		t.Errorf("run dir %s %v", runDir, err)
	}
	// Mount the container, read the image's file, write one of its own.
	p, err := s.Mount(ctx, "web", MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(p, "etc/hello")); err != nil || string(b) != "hello world\n" {
		t.Fatalf("read %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(p, "new"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ContainerSize(ctx, "web"); err != nil || n != 5+2 {
		t.Errorf("container size %d %v", n, err)
	}
	if err := s.DeleteContainer(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(dir), filepath.Dir(runDir)} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survives the container: %v", d, err)
		}
	}
	if _, err := s.Layer(c.LayerID); !errors.Is(err, ErrLayerUnknown) {
		t.Errorf("container layer survives: %v", err)
	}
	if n, _ := s.Mounted(top.ID); n != 0 {
		t.Errorf("top layer mounted %d", n)
	}
	// Image-less container: a parentless layer.
	c2, err := s.CreateContainer(ctx, "", ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Layer(c2.LayerID); l.Parent != "" || c2.ImageID != "" {
		t.Errorf("image-less container %+v layer %+v", c2, l)
	}
}

func TestVolatileAndTransientContainers(t *testing.T) {
	for _, transient := range []bool{false, true} {
		t.Run(map[bool]string{false: "volatile", true: "transient"}[transient], func(t *testing.T) {
			opts := testOptions(t.TempDir())
			opts.TransientStore = transient
			s := openWith(t, opts)
			c, err := s.CreateContainer(ctx, "", ContainerOptions{Volatile: !transient})
			if err != nil {
				t.Fatal(err)
			}
			if c.Flags["Volatile"] != true {
				t.Errorf("flags %v", c.Flags)
			}
			ctrRoot, layerRoot := opts.GraphRoot, opts.GraphRoot
			if transient {
				ctrRoot, layerRoot = opts.RunRoot, opts.RunRoot
			}
			var ctrs []map[string]any
			readJSON(t, filepath.Join(ctrRoot, "vfs-containers", "volatile-containers.json"), &ctrs)
			if len(ctrs) != 1 || ctrs[0]["id"] != c.ID {
				t.Errorf("volatile containers %v", ctrs)
			}
			var layers []map[string]any
			readJSON(t, filepath.Join(layerRoot, "vfs-layers", "volatile-layers.json"), &layers)
			if len(layers) != 1 || layers[0]["id"] != c.LayerID {
				t.Errorf("volatile layers %v", layers)
			}
			if transient {
				if _, err := os.Stat(filepath.Join(opts.RunRoot, "vfs-containers", "containers.lock")); err != nil {
					t.Errorf("transient container lock: %v", err)
				}
			}
			s.Close()
			s2 := openWith(t, opts)
			if got, err := s2.Container(c.ID); err != nil || got.LayerID != c.LayerID {
				t.Fatalf("reload: %v", err)
			}
			if err := s2.DeleteContainer(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
