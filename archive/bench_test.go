package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// benchTar is a ~64 MiB layer tar of many small files: 64 directories of 128 files of 8 KiB.
func benchTar(b *testing.B) []byte {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := bytes.Repeat([]byte("benchmark layer "), 512) // 8 KiB
	for d := 0; d < 64; d++ {
		dir := fmt.Sprintf("usr/share/pkg%02d/", d)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: testTime}); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 128; f++ {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sfile%03d", dir, f), Mode: 0o644, Size: int64(len(content)), ModTime: testTime}
			if err := tw.WriteHeader(hdr); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(content); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkApply applies benchTar into a fresh directory per iteration, on the test temp dir's
// file system and, when /dev/shm is a tmpfs, on memory (which shows Apply's own cost rather than
// the disk's).
func BenchmarkApply(b *testing.B) {
	data := benchTar(b)
	b.Run("tempdir", func(b *testing.B) { benchApply(b, data, b.TempDir()) })
	b.Run("tmpfs", func(b *testing.B) {
		var st unix.Statfs_t
		if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
			b.Skip("/dev/shm is not a tmpfs")
		}
		base, err := os.MkdirTemp("/dev/shm", "bench-apply-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(base)
		benchApply(b, data, base)
	})
}

func benchApply(b *testing.B, data []byte, base string) {
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Apply(context.Background(), root, bytes.NewReader(data), ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
