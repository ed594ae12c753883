package main

import (
	"archive/tar"
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pluggable-storage/storage/pluginapi"
)

// benchSize is the layer size of the throughput benchmarks: -benchsize or
// $OVERLAY_BENCH_SIZE, in bytes or with a KiB/MiB/GiB suffix. Default 64MiB.
var benchSize = flag.String("benchsize", "", "layer size for the overlay apply/diff benchmarks (e.g. 64MiB, 1GiB; default $OVERLAY_BENCH_SIZE or 64MiB)")

// benchFileSize is the size of each file of the benchmark layer ("many small files").
const benchFileSize = 8 << 10

func layerSize(b *testing.B) int64 {
	s := *benchSize
	if s == "" {
		s = os.Getenv("OVERLAY_BENCH_SIZE")
	}
	if s == "" {
		s = "64MiB"
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("bad benchmark size %q", s)
	}
	return n * mult
}

// writeBenchTar writes a layer tar of size bytes of file content, in benchFileSize files, 256 per
// directory, to a file under dir and returns its path.
func writeBenchTar(b *testing.B, dir string, size int64) string {
	b.Helper()
	p := filepath.Join(dir, "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	content := make([]byte, benchFileSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	for i := int64(0); i*benchFileSize < size; i++ {
		if i%256 == 0 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%05d/", i/256), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				b.Fatal(err)
			}
		}
		content[0], content[1] = byte(i), byte(i>>8)
		hdr := &tar.Header{Name: fmt.Sprintf("d%05d/f%03d", i/256, i%256), Typeflag: tar.TypeReg, Mode: 0o644, Size: benchFileSize}
		if err := tw.WriteHeader(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

func applyFile(b *testing.B, d pluginapi.Driver, id, tarPath string) int64 {
	b.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n, err := d.ApplyDiff(context.Background(), id, "", bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkApplyDiff: ApplyDiff of a layer of many small files into a fresh base layer
// (native: straight into diff/). Bytes are file content.
func BenchmarkApplyDiff(b *testing.B) {
	e := newEnv(b)
	size := layerSize(b)
	tarPath := writeBenchTar(b, b.TempDir(), size)
	ctx := context.Background()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := fmt.Sprintf("apply-%d", i)
		if err := e.d.Create(ctx, id, "", pluginapi.CreateOpts{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n := applyFile(b, e.d, id, tarPath); n != size {
			b.Fatalf("applied %d bytes, want %d", n, size)
		}
		b.StopTimer()
		if err := e.d.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkDiff: Diff of a layer of many small files against its (empty) parent, read to the
// end (native: a tar of diff/).
func BenchmarkDiff(b *testing.B) {
	e := newEnv(b)
	size := layerSize(b)
	tarPath := writeBenchTar(b, b.TempDir(), size)
	ctx := context.Background()
	if err := e.d.Create(ctx, "diff-base", "", pluginapi.CreateOpts{}); err != nil {
		b.Fatal(err)
	}
	applyFile(b, e.d, "diff-base", tarPath)
	if err := os.Remove(tarPath); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rc, err := e.d.Diff(ctx, "diff-base", "")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil || n < size {
			b.Fatalf("diff: %d bytes, %v", n, err)
		}
	}
}

// BenchmarkMountUnmount: Get then Put of a layer with 1 and 128 lowers.
func BenchmarkMountUnmount(b *testing.B) {
	for _, lowers := range []int{1, 128} {
		b.Run(fmt.Sprintf("lowers=%d", lowers), func(b *testing.B) {
			e := newEnv(b)
			ids := buildChain(b, e.d, "mnt", lowers+1, nil)
			top := ids[len(ids)-1]
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.d.Get(ctx, top, pluginapi.MountOpts{}); err != nil {
					b.Fatal(err)
				}
				if err := e.d.Put(ctx, top); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
