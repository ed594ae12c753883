package core

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// benchIDs are the layer and image IDs of a benchmark store of n layers and n images.
func benchID(kind string, i int) string {
	return digest.FromString(fmt.Sprintf("%s-%d", kind, i)).Encoded()
}

// writeBenchStore writes layers.json and images.json with n records each, in the established
// format (layers chained 16 deep, each image on one layer with a manifest digest), and returns
// options for a vfs store there. No driver layer exists: lookups never need one.
func writeBenchStore(b *testing.B, n int) Options {
	b.Helper()
	opts := testOptions(b.TempDir())
	layers := make([]*Layer, n)
	images := make([]*Image, n)
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		l := &Layer{ID: benchID("layer", i), Names: []string{fmt.Sprintf("layer-%d", i)}, Created: created,
			UncompressedDigest: digest.FromString(fmt.Sprintf("diff-%d", i)), UncompressedSize: 1024,
			CompressedDigest: digest.FromString(fmt.Sprintf("blob-%d", i)), CompressedSize: 512, UIDs: []uint32{0}, GIDs: []uint32{0}}
		if i%16 != 0 {
			l.Parent = layers[i-1].ID
		}
		layers[i] = l
		md := digest.FromString(fmt.Sprintf("manifest-%d", i))
		images[i] = &Image{ID: benchID("image", i), Digest: md, Names: []string{fmt.Sprintf("registry.example/image-%d:latest", i)},
			TopLayer: l.ID, Created: created, BigDataNames: []string{"manifest"},
			BigDataSizes: map[string]int64{"manifest": 500}, BigDataDigests: map[string]digest.Digest{"manifest": md}}
	}
	for path, v := range map[string]any{
		filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"): layers,
		filepath.Join(opts.GraphRoot, "vfs-images", "images.json"): images,
	} {
		data, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return opts
}

var benchSizes = []int{1000, 10000}

// BenchmarkOpen: opening a store of n layers and n images (reading and indexing both files).
func BenchmarkOpen(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			opts := writeBenchStore(b, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := Open(ctx, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Layer(benchID("layer", n-1)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/open")
		})
	}
}

// BenchmarkLookup: one lookup by ID, name, unique prefix or digest, at 1,000 and 10,000
// records. Each iteration does lookupsPerIter lookups of different items, so one iteration
// (make bench runs -benchtime 1x) still gives a stable per-lookup figure.
func BenchmarkLookup(b *testing.B) {
	const lookupsPerIter = 2000
	for _, n := range benchSizes {
		opts := writeBenchStore(b, n)
		s, err := Open(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		cases := []struct {
			name string
			fn   func(i int) error
		}{
			{"layer-by-id", func(i int) error { _, err := s.Layer(benchID("layer", i)); return err }},
			{"layer-by-name", func(i int) error { _, err := s.Layer(fmt.Sprintf("layer-%d", i)); return err }},
			{"layer-by-prefix", func(i int) error { _, err := s.Layer(benchID("layer", i)[:16]); return err }},
			{"image-by-id", func(i int) error { _, err := s.Image(benchID("image", i)); return err }},
			{"image-by-name", func(i int) error {
				_, err := s.Image(fmt.Sprintf("registry.example/image-%d:latest", i))
				return err
			}},
			{"image-by-prefix", func(i int) error { _, err := s.Image(benchID("image", i)[:16]); return err }},
			{"images-by-digest", func(i int) error {
				imgs, err := s.ImagesByDigest(digest.FromString(fmt.Sprintf("manifest-%d", i)))
				if err == nil && len(imgs) != 1 {
					err = fmt.Errorf("%d images", len(imgs))
				}
				return err
			}},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/records=%d", c.name, n), func(b *testing.B) {
				for k := 0; k < lookupsPerIter/4; k++ { // warm up caches and the scheduler
					c.fn(k % n)
				}
				runtime.GC()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for k := 0; k < lookupsPerIter; k++ {
						if err := c.fn((k * 7919) % n); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lookupsPerIter), "ns/lookup")
			})
		}
		if s.DriverStarted() {
			b.Fatal("lookups started the driver")
		}
		s.Close()
	}
}

// BenchmarkCreateImage: adding one image record to a store of n images (the whole images.json
// is rewritten and synced, as with the established tool).
func BenchmarkCreateImage(b *testing.B) {
	const createsPerIter = 20
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			s, err := Open(ctx, writeBenchStore(b, n))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := 0; k < createsPerIter; k++ {
					if _, err := s.CreateImage(ctx, ImageOptions{TopLayer: benchID("layer", k)}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*createsPerIter), "ms/create")
		})
	}
}

// BenchmarkCreateLayer: adding one empty layer to a store of n layers, through the vfs plugin
// (a real subprocess): the record is saved incomplete, the driver creates the layer, the record
// is saved complete, so layers.json is rewritten and synced twice per layer.
func BenchmarkCreateLayer(b *testing.B) {
	const createsPerIter = 20
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			s, err := Open(ctx, writeBenchStore(b, n))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.CreateLayer(ctx, LayerOptions{}, nil); err != nil { // starts the plugin
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := 0; k < createsPerIter; k++ {
					if _, err := s.CreateLayer(ctx, LayerOptions{Names: []string{fmt.Sprintf("new-%d-%d", i, k)}}, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*createsPerIter), "ms/create")
		})
	}
}
