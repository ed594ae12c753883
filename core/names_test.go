package core

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The generic Delete skips every dependency check: container (userdata only), image (record
// only), then layer.
func TestGenericDeleteSkipsChecks(t *testing.T) {
	s, opts := openStore(t)
	base, _ := s.CreateLayer(ctx, LayerOptions{}, nil)
	child, _ := s.CreateLayer(ctx, LayerOptions{Parent: base.ID}, nil)
	img, _ := s.CreateImage(ctx, ImageOptions{TopLayer: child.ID})
	c, err := s.CreateContainer(ctx, img.ID, ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(opts.GraphRoot, "vfs-containers", c.ID, "userdata")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("userdata survives: %v", err)
	}
	if err := s.Delete(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if !s.Exists(child.ID, KindLayer) {
		t.Error("generic image delete removed its layers")
	}
	if err := s.Delete(ctx, base.ID); err != nil { // has a child: no check
		t.Fatal(err)
	}
	if s.Exists(base.ID) {
		t.Error("base survives")
	}
	if err := s.Delete(ctx, "nothing"); !errors.Is(err, ErrNotFoundAnywhere) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("unknown: %v", err)
	}
}

func TestLayerBigDataAndStorageLayers(t *testing.T) {
	s, opts := openStore(t)
	l, _ := s.CreateLayer(ctx, LayerOptions{}, nil)
	for _, k := range []string{"plain.key", "Upper/Case"} {
		if err := s.SetLayerBigData(l.ID, k, strings.NewReader("v-"+k)); err != nil {
			t.Fatal(err)
		}
		rc, err := s.LayerBigData(l.ID, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "v-"+k {
			t.Errorf("%s: %q", k, b)
		}
	}
	if keys, _ := s.ListLayerBigData(l.ID); !slices.Equal(keys, []string{"plain.key", "Upper/Case"}) {
		t.Errorf("keys %v", keys)
	}
	if _, err := os.Stat(filepath.Join(opts.GraphRoot, "vfs-layers", l.ID, "plain.key")); err != nil {
		t.Error(err)
	}
	if _, err := s.LayerBigData(l.ID, "absent"); !errors.Is(err, ErrBigDataUnknown) {
		t.Errorf("absent key: %v", err)
	}
	id, err := s.CreateStorageLayer(ctx, LayerOptions{Parent: l.ID})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := s.StorageLayers(ctx)
	slices.Sort(ids)
	want := []string{l.ID, id}
	slices.Sort(want)
	if !slices.Equal(ids, want) || s.Exists(id) {
		t.Errorf("storage layers %v, want %v with no record for %s", ids, want, id)
	}
}
