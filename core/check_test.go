package core

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func errTexts(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error())
		b.WriteString("\n")
	}
	return b.String()
}

func TestCheckFindsDamageAndRepairFixesIt(t *testing.T) {
	s, opts := openStore(t)
	good, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(sampleTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	goodImg, _ := s.CreateImage(ctx, ImageOptions{TopLayer: good.ID})
	bad, err := s.CreateLayer(ctx, LayerOptions{Parent: good.ID}, bytes.NewReader(makeTar(t, tarEntry{name: "f", body: "original"})))
	if err != nil {
		t.Fatal(err)
	}
	badImg, _ := s.CreateImage(ctx, ImageOptions{TopLayer: bad.ID})
	if err := s.SetImageBigData(goodImg.ID, "config", []byte("cfg"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateStorageLayer(ctx, LayerOptions{ID: "unaccounted"}); err != nil {
		t.Fatal(err)
	}
	// Damage: a file added to a layer made from a tar, and a missing big-data file.
	os.WriteFile(filepath.Join(opts.GraphRoot, "vfs", "dir", bad.ID, "extra"), []byte("x"), 0o644)
	os.Remove(filepath.Join(opts.GraphRoot, "vfs-images", goodImg.ID, "config"))

	zero := time.Duration(0)
	report, err := s.Check(ctx, CheckOptions{LayerUnreferencedMaximumAge: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if got := errTexts(report.Layers["unaccounted"]); !strings.Contains(got, "layer in lower level storage driver not accounted for") {
		t.Errorf("unaccounted: %q", got)
	}
	if got := errTexts(report.Layers[bad.ID]); !strings.Contains(got, "+/extra, layer content modified") {
		t.Errorf("modified layer: %q", got)
	}
	if got := errTexts(report.Images[goodImg.ID]); !strings.Contains(got, `data item "config": image data item is missing`) {
		t.Errorf("missing data: %q", got)
	}
	if _, ok := report.Layers[good.ID]; ok {
		t.Errorf("good layer reported: %v", report.Layers[good.ID])
	}
	if errs := s.Repair(ctx, report, RepairOptions{}); len(errs) != 0 {
		t.Fatalf("repair: %v", errs)
	}
	for _, id := range []string{bad.ID, badImg.ID, goodImg.ID} {
		if s.Exists(id) {
			t.Errorf("%s survives repair", id)
		}
	}
	if !s.Exists(good.ID) {
		t.Error("repair removed a sound layer")
	}
	hour := time.Hour
	report, err = s.Check(ctx, CheckOptions{LayerUnreferencedMaximumAge: &hour})
	if err != nil || !report.Empty() {
		t.Fatalf("after repair: %+v %v", report, err)
	}
	// With a zero age, the now unreferenced layer is reported.
	report, _ = s.Check(ctx, CheckOptions{Quick: true, LayerUnreferencedMaximumAge: &zero})
	if got := errTexts(report.Layers[good.ID]); !strings.Contains(got, "layer not referenced by any images or containers") {
		t.Errorf("unreferenced: %q", got)
	}
}

func TestCheckDetectsAlteredFileContent(t *testing.T) {
	s, opts := openStore(t)
	l, err := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(sampleTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImage(ctx, ImageOptions{TopLayer: l.ID}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(opts.GraphRoot, "vfs", "dir", l.ID, "etc", "hello"), []byte("HELLO WORLD\n"), 0o644)
	report, err := s.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := report.Layers[l.ID]; len(got) == 0 || !errors.Is(got[0], ErrLayerContentDigest) {
		t.Errorf("altered content: %v", got)
	}
	if n, _ := s.Mounted(l.ID); n != 0 {
		t.Errorf("check left the layer mounted (%d)", n)
	}
}

func TestGCRemovesLeftovers(t *testing.T) {
	s, opts := openStore(t)
	l, _ := s.CreateLayer(ctx, LayerOptions{}, bytes.NewReader(sampleTar(t)))
	img, _ := s.CreateImage(ctx, ImageOptions{TopLayer: l.ID})
	s.SetImageBigData(img.ID, "manifest", []byte("m"), nil)
	stray := []string{
		filepath.Join(opts.GraphRoot, "vfs-layers", "deadbeef.tar-split.gz"),
		filepath.Join(opts.GraphRoot, "vfs-layers", "deadbeef"),
		filepath.Join(opts.GraphRoot, "vfs-images", "deadbeef"),
		filepath.Join(opts.GraphRoot, "vfs-containers", "deadbeef"),
		filepath.Join(opts.RunRoot, "vfs-containers", "deadbeef"),
	}
	for _, p := range stray {
		if strings.HasSuffix(p, ".gz") {
			os.WriteFile(p, []byte("x"), 0o600)
		} else {
			os.MkdirAll(filepath.Join(p, "userdata"), 0o700)
		}
	}
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range stray {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survives gc", p)
		}
	}
	for _, p := range []string{
		filepath.Join(opts.GraphRoot, "vfs-layers", l.ID+".tar-split.gz"),
		filepath.Join(opts.GraphRoot, "vfs-images", img.ID, "manifest"),
		filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"),
	} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("gc removed %s: %v", p, err)
		}
	}
}
