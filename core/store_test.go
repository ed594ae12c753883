package core

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
)

func TestStoreReadBackFieldForField(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	s := openWith(t, opts)
	base, err := s.CreateLayer(ctx, LayerOptions{Names: []string{"base"}, MountLabel: "label"}, bytes.NewReader(gzipBytes(t, sampleTar(t))))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMetadata(base.ID, "layer metadata"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLayerBigData(base.ID, "blob", strings.NewReader("layer data")); err != nil {
		t.Fatal(err)
	}
	img, err := s.CreateImage(ctx, ImageOptions{TopLayer: "base", Names: []string{"img:latest"}, Metadata: "{}", Digest: digest.FromString("d")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImageBigData(img.ID, "manifest", []byte("m"), nil); err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateContainer(ctx, img.ID, ContainerOptions{Names: []string{"c"}, Metadata: "cm", MountOpts: []string{"nodev"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetContainerBigData(c.ID, "state", []byte("running")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, base.ID, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	layers, _ := s.Layers()
	images, _ := s.Images()
	containers, _ := s.Containers()
	s.Close()

	s2 := openWith(t, opts)
	layers2, _ := s2.Layers()
	images2, _ := s2.Images()
	containers2, _ := s2.Containers()
	if !reflect.DeepEqual(layers, layers2) {
		t.Errorf("layers differ after reload:\n%+v\n%+v", layers, layers2)
	}
	if !reflect.DeepEqual(images, images2) {
		t.Errorf("images differ after reload:\n%+v\n%+v", images, images2)
	}
	if !reflect.DeepEqual(containers, containers2) {
		t.Errorf("containers differ after reload:\n%+v\n%+v", containers, containers2)
	}
	if layers2[0].MountCount != 1 || layers2[0].MountPoint == "" || layers2[0].CompressionType != archive.Gzip {
		t.Errorf("base after reload %+v", layers2[0])
	}
	// The on-disk keys are the established ones.
	raw, _ := os.ReadFile(filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"))
	for _, key := range []string{`"id"`, `"names"`, `"metadata"`, `"mountlabel"`, `"created"`, `"compressed-diff-digest"`, `"compressed-size"`,
		`"diff-digest"`, `"diff-size"`, `"compression":2`, `"uidset"`, `"gidset"`, `"big-data-names"`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("layers.json lacks %s: %s", key, raw)
		}
	}
	raw, _ = os.ReadFile(filepath.Join(opts.RunRoot, "vfs-layers", "mountpoints.json"))
	if !bytes.Contains(raw, []byte(`"id":"`+base.ID+`"`)) || !bytes.Contains(raw, []byte(`"count":1`)) || !bytes.Contains(raw, []byte(`"path":`)) {
		t.Errorf("mountpoints.json %s", raw)
	}
	// Modes of SPEC-disk §1.1.
	for p, want := range map[string]os.FileMode{
		filepath.Join(opts.GraphRoot, "vfs-layers"):                   0o700 | os.ModeDir,
		filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"):    0o600,
		filepath.Join(opts.GraphRoot, "vfs-layers", "layers.lock"):    0o644,
		filepath.Join(opts.GraphRoot, "vfs-images", "images.json"):    0o600,
		filepath.Join(opts.RunRoot, "vfs-layers", "mountpoints.lock"): 0o644,
	} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
}

// A layers.json, images.json, containers.json and mountpoints.json as the established tool
// writes them.
const (
	establishedLayers     = `[{"id":"7c3e4b5a1f0d2c9e8b6a4d3f2e1c0b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a","names":["base-layer"],"created":"2024-03-01T10:20:30.123456789Z","compressed-diff-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","compressed-size":2823,"diff-digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","diff-size":7168,"compression":2,"uidset":[0,1000],"gidset":[0,42],"big-data-names":["blob"]},{"id":"layer-cat","parent":"7c3e4b5a1f0d2c9e8b6a4d3f2e1c0b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a","metadata":"some metadata","mountlabel":"system_u:object_r:container_file_t:s0:c1,c2","created":"2024-03-01T10:21:00Z","toc-digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","flags":{"custom":"value"},"uidmap":[{"container_id":0,"host_id":100000,"size":65536}],"gidmap":[{"container_id":0,"host_id":100000,"size":65536}]}]`
	establishedImages     = `[{"id":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","names":["docker.io/library/busybox:latest"],"names-history":["docker.io/library/busybox:latest","docker.io/library/busybox:old"],"layer":"layer-cat","metadata":"{}","big-data-names":["manifest-sha256:5555555555555555555555555555555555555555555555555555555555555555","manifest","sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],"big-data-sizes":{"manifest":527,"manifest-sha256:5555555555555555555555555555555555555555555555555555555555555555":527,"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08":1457},"big-data-digests":{"manifest":"sha256:5555555555555555555555555555555555555555555555555555555555555555","manifest-sha256:5555555555555555555555555555555555555555555555555555555555555555":"sha256:5555555555555555555555555555555555555555555555555555555555555555","sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},"created":"2024-02-28T01:02:03.5Z"}]`
	establishedContainers = `[{"id":"c0ffee","names":["web"],"image":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","layer":"layer-cat","metadata":"{\"Name\":\"web\"}","big-data-names":["config.json"],"big-data-sizes":{"config.json":2},"big-data-digests":{"config.json":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"created":"2024-03-02T00:00:00Z","flags":{"MountLabel":"","ProcessLabel":"","MountOpts":["nodev"]}}]`
	establishedMounts     = `[{"id":"layer-cat","path":"/run/some/where","count":2}]`
)

func TestReadEstablishedFormat(t *testing.T) {
	opts := testOptions(t.TempDir())
	for p, content := range map[string]string{
		filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"):         establishedLayers,
		filepath.Join(opts.GraphRoot, "vfs-images", "images.json"):         establishedImages,
		filepath.Join(opts.GraphRoot, "vfs-containers", "containers.json"): establishedContainers,
		filepath.Join(opts.RunRoot, "vfs-layers", "mountpoints.json"):      establishedMounts,
	} {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openWith(t, opts)
	base, err := s.Layer("base-layer")
	if err != nil {
		t.Fatal(err)
	}
	want := Layer{ID: "7c3e4b5a1f0d2c9e8b6a4d3f2e1c0b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a", Names: []string{"base-layer"},
		Created:            time.Date(2024, 3, 1, 10, 20, 30, 123456789, time.UTC),
		CompressedDigest:   "sha256:1111111111111111111111111111111111111111111111111111111111111111",
		CompressedSize:     2823,
		UncompressedDigest: "sha256:2222222222222222222222222222222222222222222222222222222222222222",
		UncompressedSize:   7168, CompressionType: archive.Gzip, UIDs: []uint32{0, 1000}, GIDs: []uint32{0, 42},
		BigDataNames: []string{"blob"}}
	if !reflect.DeepEqual(*base, want) {
		t.Errorf("base layer\n got %+v\nwant %+v", *base, want)
	}
	cat, err := s.Layer("layer-cat")
	if err != nil {
		t.Fatal(err)
	}
	if cat.Parent != want.ID || cat.Metadata != "some metadata" || cat.MountLabel != "system_u:object_r:container_file_t:s0:c1,c2" ||
		cat.TOCDigest != "sha256:3333333333333333333333333333333333333333333333333333333333333333" || cat.Flags["custom"] != "value" ||
		!reflect.DeepEqual(cat.UIDMap, []IDMap{{0, 100000, 65536}}) || !reflect.DeepEqual(cat.GIDMap, cat.UIDMap) ||
		cat.MountCount != 2 || cat.MountPoint != "/run/some/where" {
		t.Errorf("layer-cat %+v", cat)
	}
	img, err := s.Image("docker.io/library/busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	wantDigests := []digest.Digest{"sha256:4444444444444444444444444444444444444444444444444444444444444444", "sha256:5555555555555555555555555555555555555555555555555555555555555555"}
	if img.TopLayer != "layer-cat" || !reflect.DeepEqual(img.Digests, wantDigests) || len(img.NamesHistory) != 2 ||
		img.BigDataSizes["manifest"] != 527 || img.Created != time.Date(2024, 2, 28, 1, 2, 3, 500000000, time.UTC) {
		t.Errorf("image %+v", img)
	}
	if got, _ := s.ImagesByDigest(wantDigests[1]); len(got) != 1 {
		t.Errorf("by manifest digest: %v", got)
	}
	c, err := s.Container("web")
	if err != nil {
		t.Fatal(err)
	}
	if c.ImageID != img.ID || c.LayerID != "layer-cat" || c.BigDataSizes["config.json"] != 2 || c.Flags["MountOpts"] == nil {
		t.Errorf("container %+v", c)
	}
	if s.DriverStarted() {
		t.Error("reading an existing store started the driver")
	}
	// Written back, the files keep every field.
	if err := s.SetMetadata("layer-cat", "some metadata"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"))
	if string(raw) != establishedLayers {
		t.Errorf("layers.json rewritten differently:\n%s\n%s", raw, establishedLayers)
	}
}

func TestCorruptJSONNamesFileAndIsNotOverwritten(t *testing.T) {
	opts := testOptions(t.TempDir())
	s := openWith(t, opts)
	if _, err := s.CreateImage(ctx, ImageOptions{Names: []string{"keep"}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(opts.GraphRoot, "vfs-images", "images.json")
	raw, _ := os.ReadFile(path)
	truncated := raw[:len(raw)/2]
	os.WriteFile(path, truncated, 0o600)
	// As another process would after writing: a new token on images.lock.
	if err := os.WriteFile(filepath.Join(opts.GraphRoot, "vfs-images", "images.lock"), bytes.Repeat([]byte{7}, 64), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]func() error{
		"open": func() error { _, err := Open(ctx, opts); return err },
		"create": func() error {
			// A write through a long-lived store reloads first, and fails.
			_, err := s.CreateImage(ctx, ImageOptions{Names: []string{"new"}})
			return err
		},
	} {
		err := run()
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset") || !errors.Is(err, errdefs.ErrCorrupt) {
			t.Errorf("%s: %v, want a corrupt error naming %s and the offset", name, err, path)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, truncated) {
			t.Errorf("%s: the damaged file was overwritten", name)
		}
	}
}

func TestLongLivedStoreSeesOtherWriters(t *testing.T) {
	opts := testOptions(t.TempDir())
	a := openWith(t, opts)
	b := openWith(t, opts)
	if imgs, _ := a.Images(); len(imgs) != 0 {
		t.Fatal(imgs)
	}
	lockPath := filepath.Join(opts.GraphRoot, "vfs-images", "images.lock")
	before, _ := os.ReadFile(lockPath)
	if _, err := b.CreateImage(ctx, ImageOptions{Names: []string{"from-b"}}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(lockPath)
	if len(after) != 64 || bytes.Equal(before, after) {
		t.Errorf("images.lock token did not change (%d bytes)", len(after))
	}
	if img, err := a.Image("from-b"); err != nil || img.Names[0] != "from-b" {
		t.Fatalf("a does not see b's image: %v", err)
	}
	if err := a.SetNames("from-b", []string{"renamed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Image("renamed"); err != nil {
		t.Fatalf("b does not see a's rename: %v", err)
	}
}

func TestShutdownRefusesWhileMounted(t *testing.T) {
	s, opts := openStore(t)
	l, err := s.CreateLayer(ctx, LayerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, l.ID, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, l.ID, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(opts.GraphRoot, "storage.lock")
	before, _ := os.ReadFile(lockPath)
	un, err := s.Shutdown(ctx, false)
	if !errors.Is(err, ErrLayerMounted) || err.Error() != "shutdown: a layer is mounted: layer is in use by a container" || len(un) != 0 {
		t.Fatalf("shutdown: %v %v", un, err)
	}
	if n, _ := s.Mounted(l.ID); n != 2 {
		t.Fatalf("non-forced shutdown changed the count to %d", n)
	}
	un, err = s.Shutdown(ctx, true)
	if !errors.Is(err, ErrLayerMounted) || len(un) != 1 || un[0] != l.ID {
		t.Fatalf("forced shutdown: %v %v", un, err)
	}
	if n, _ := s.Mounted(l.ID); n != 0 {
		t.Fatalf("forced shutdown left count %d", n)
	}
	if now, _ := os.ReadFile(lockPath); !bytes.Equal(now, before) {
		t.Error("a failed shutdown recorded a write on storage.lock")
	}
	if _, err := s.Shutdown(ctx, false); err != nil {
		t.Fatalf("shutdown with nothing mounted: %v", err)
	}
	if now, _ := os.ReadFile(lockPath); len(now) != 64 || bytes.Equal(now, before) {
		t.Error("shutdown did not record a write on storage.lock")
	}
	// The store keeps working after a shutdown: the driver is initialised again.
	if _, err := s.CreateLayer(ctx, LayerOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestWipeRemovesEverything(t *testing.T) {
	s, opts := openStore(t)
	l, _ := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(sampleTar(t)))
	img, _ := s.CreateImage(ctx, ImageOptions{TopLayer: l.ID})
	c, err := s.CreateContainer(ctx, img.ID, ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, c.ID, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateStorageLayer(ctx, LayerOptions{ID: "orphan"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Wipe(ctx); err != nil {
		t.Fatal(err)
	}
	ls, _ := s.Layers()
	is, _ := s.Images()
	cs, _ := s.Containers()
	ids, _ := s.StorageLayers(ctx)
	if len(ls)+len(is)+len(cs)+len(ids) != 0 {
		t.Fatalf("after wipe: %d layers %d images %d containers, driver %v", len(ls), len(is), len(cs), ids)
	}
	if _, err := os.Stat(filepath.Join(opts.GraphRoot, "vfs-containers", c.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container dir survives wipe: %v", err)
	}
	if _, err := s.Shutdown(ctx, false); err != nil {
		t.Fatalf("shutdown after wipe: %v", err)
	}
}

func TestStatusAndVersion(t *testing.T) {
	s, opts := openStore(t)
	v, err := s.Version()
	if err != nil || len(v) != 1 || v[0][0] != "Version" {
		t.Fatalf("version %v %v", v, err)
	}
	if s.DriverStarted() {
		t.Fatal("version started the driver")
	}
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) < 4 || st[0] != [2]string{"Root", opts.GraphRoot} || st[1] != [2]string{"Run Root", opts.RunRoot} || st[2] != [2]string{"Driver Name", "vfs"} {
		t.Errorf("status %v", st)
	}
}

func TestReadOnlyStoreRefusesWrites(t *testing.T) {
	opts := testOptions(t.TempDir())
	s := openWith(t, opts)
	if _, err := s.CreateImage(ctx, ImageOptions{Names: []string{"i"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	opts.ReadOnly = true
	ro := openWith(t, opts)
	img, err := ro.Image("i")
	if err != nil || !img.ReadOnly {
		t.Fatalf("read-only image %+v %v", img, err)
	}
	if _, err := ro.CreateImage(ctx, ImageOptions{}); !errors.Is(err, ErrStoreIsReadOnly) {
		t.Errorf("write to a read-only store: %v", err)
	}
}

func TestUnsupportedFeaturesSaySo(t *testing.T) {
	s, opts := openStore(t)
	if _, err := s.CreateLayer(ctx, LayerOptions{UIDMap: []IDMap{{0, 1000, 1}}}, nil); !errors.Is(err, errdefs.ErrNotSupported) || !strings.Contains(err.Error(), "ID-mapped layers are not supported yet") {
		t.Errorf("ID maps: %v", err)
	}
	if _, err := s.CreateContainer(ctx, "", ContainerOptions{GIDMap: []IDMap{{0, 1000, 1}}}); !errors.Is(err, ErrIDMapsNotSupported) {
		t.Errorf("ID-mapped container: %v", err)
	}
	_ = opts
}
