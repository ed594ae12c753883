package core

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/pluggable-storage/storage/errdefs"
)

func TestImageBigDataAndDigests(t *testing.T) {
	s, opts := openStore(t)
	explicit := digest.FromString("explicit")
	img, err := s.CreateImage(ctx, ImageOptions{ID: "img1", Names: []string{"one"}, Digest: explicit, Metadata: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if img.TopLayer != "" || !slices.Equal(img.Digests, []digest.Digest{explicit}) {
		t.Fatalf("new image %+v", img)
	}
	manifest := []byte(`{"schemaVersion":2}`)
	other := []byte(`{"other":true}`)
	calls := 0
	dm := func(b []byte) (digest.Digest, error) { calls++; return digest.FromBytes(b), nil }
	for _, item := range []struct {
		key  string
		data []byte
	}{
		{"manifest", manifest},
		{"manifest-sha256:abc", other},
		{"config", []byte("cfg")},
		{"Some Key/With Stuff", []byte("weird")},
	} {
		if err := s.SetImageBigData("one", item.key, item.data, dm); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Errorf("manifest digester called %d times, want 2 (manifest keys only)", calls)
	}
	img, err = s.Image("img1")
	if err != nil {
		t.Fatal(err)
	}
	want := []digest.Digest{explicit, digest.FromBytes(manifest), digest.FromBytes(other)}
	if !slices.Equal(img.Digests, want) || img.Digest != explicit {
		t.Errorf("digests %v (digest %s), want %v", img.Digests, img.Digest, want)
	}
	if !slices.Equal(img.BigDataNames, []string{"manifest", "manifest-sha256:abc", "config", "Some Key/With Stuff"}) {
		t.Errorf("big data names %v", img.BigDataNames)
	}
	if n, err := s.ImageBigDataSize("one", "config"); err != nil || n != 3 {
		t.Errorf("size %d %v", n, err)
	}
	if d, err := s.ImageBigDataDigest("one", "config"); err != nil || d != digest.FromString("cfg") {
		t.Errorf("digest %s %v", d, err)
	}
	if b, err := s.ImageBigData("one", "Some Key/With Stuff"); err != nil || string(b) != "weird" {
		t.Errorf("get %q %v", b, err)
	}
	// File naming of SPEC-disk §1.1.
	for _, f := range []string{"manifest", "config", "=U29tZSBLZXkvV2l0aCBTdHVmZg=="} {
		if _, err := os.Stat(filepath.Join(opts.GraphRoot, "vfs-images", "img1", f)); err != nil {
			t.Errorf("big data file %s: %v", f, err)
		}
	}
	if _, err := s.ImageBigData("one", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}

	// Several images may share a digest; a digest nobody has is an empty list.
	img2, err := s.CreateImage(ctx, ImageOptions{ID: "img2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImageBigData(img2.ID, "manifest", manifest, nil); err != nil {
		t.Fatal(err)
	}
	if img2, _ = s.Image("img2"); img2.Digest != digest.FromBytes(manifest) {
		t.Errorf("digest defaults to the first manifest digest: %s", img2.Digest)
	}
	got, err := s.ImagesByDigest(digest.FromBytes(manifest))
	if err != nil || len(got) != 2 || got[0].ID != "img1" || got[1].ID != "img2" {
		t.Errorf("by digest: %+v %v", got, err)
	}
	if got, err := s.ImagesByDigest(digest.FromString("nobody")); err != nil || got == nil || len(got) != 0 {
		t.Errorf("no match: %#v %v", got, err)
	}
	if _, err := s.ImagesByDigest("not-a-digest"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad digest: %v", err)
	}
	// Lookup by a unique prefix and by name.
	if im, err := s.Image("img"); err == nil {
		t.Errorf("ambiguous prefix resolved to %s", im.ID)
	}
	if im, err := s.Image("img2"); err != nil || im.ID != "img2" {
		t.Errorf("by ID: %v", err)
	}
}

func TestNamesUniqueStealAndHistory(t *testing.T) {
	s, _ := openStore(t)
	a, _ := s.CreateImage(ctx, ImageOptions{ID: "img-a", Names: []string{"x", "y"}})
	b, _ := s.CreateImage(ctx, ImageOptions{ID: "img-b", Names: []string{"z"}})
	if _, err := s.CreateImage(ctx, ImageOptions{Names: []string{"y"}}); !errors.Is(err, ErrDuplicateName) || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("taken name: %v", err)
	}
	// A layer may share a name with an image.
	l, err := s.CreateLayer(ctx, LayerOptions{Names: []string{"x"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Lookups resolve layers first.
	if k, id, err := s.Lookup("x"); err != nil || k != KindLayer || id != l.ID {
		t.Errorf("Lookup(x) = %v %s %v", k, id, err)
	}
	if err := s.AddNames("img-b", []string{"y", "w"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Names("img-b"); !slices.Equal(n, []string{"y", "w", "z"}) {
		t.Errorf("b names %v", n)
	}
	ia, _ := s.Image("img-a")
	if !slices.Equal(ia.Names, []string{"x"}) {
		t.Errorf("a names after steal %v", ia.Names)
	}
	ib, _ := s.Image("y")
	if ib.ID != "img-b" || !slices.Equal(ib.NamesHistory, []string{"w", "y", "z"}) {
		t.Errorf("b %+v", ib)
	}
	if err := s.SetNames("img-a", []string{"z", "q"}); err != nil {
		t.Fatal(err)
	}
	ia, _ = s.Image("img-a")
	ib, _ = s.Image("img-b")
	if !slices.Equal(ia.Names, []string{"z", "q"}) || !slices.Equal(ib.Names, []string{"y", "w"}) {
		t.Errorf("after set-names: a %v b %v", ia.Names, ib.Names)
	}
	if !slices.Equal(ia.NamesHistory, []string{"q", "z", "y", "x"}) {
		t.Errorf("a history %v", ia.NamesHistory)
	}
	if err := s.RemoveNames("img-a", []string{"q"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Names("img-a"); !slices.Equal(n, []string{"z"}) {
		t.Errorf("after remove %v", n)
	}
	if _, err := s.Names("nothing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	_ = b
}

func TestMetadataAnyKind(t *testing.T) {
	s, _ := openStore(t)
	l, _ := s.CreateLayer(ctx, LayerOptions{}, nil)
	c, err := s.CreateContainer(ctx, "", ContainerOptions{Metadata: "c-meta"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMetadata(l.ID, "l-meta"); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{l.ID: "l-meta", c.ID: "c-meta"} {
		if got, err := s.Metadata(ref); err != nil || got != want {
			t.Errorf("Metadata(%s) = %q %v", ref, got, err)
		}
	}
}
