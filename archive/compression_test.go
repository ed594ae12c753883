package archive

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
)

// compressed returns payload compressed with c: by CompressStream where supported, else by the
// bzip2 / xz command (the test skips when it is missing).
func compressed(t *testing.T, c Compression, payload []byte) []byte {
	t.Helper()
	switch c {
	case Bzip2, Xz:
		bin := map[Compression]string{Bzip2: "bzip2", Xz: "xz"}[c]
		path, err := exec.LookPath(bin)
		if err != nil {
			t.Skipf("the %s command is not installed (apt-get install %s)", bin, map[Compression]string{Bzip2: "bzip2", Xz: "xz-utils"}[c])
		}
		cmd := exec.Command(path, "-c")
		cmd.Stdin = bytes.NewReader(payload)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		return out
	}
	var buf bytes.Buffer
	w, err := CompressStream(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCompressionRoundTrip(t *testing.T) {
	payload := buildTar(t, file("a", string(bytes.Repeat([]byte("layer content "), 20000))), file("b", "b"))
	for _, c := range []Compression{Uncompressed, Gzip, Bzip2, Xz, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			data := compressed(t, c, payload)
			if got := DetectCompression(data); got != c {
				t.Errorf("DetectCompression = %v, want %v", got, c)
			}
			r, got, err := DecompressStream(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got != c {
				t.Errorf("DecompressStream detected %v, want %v", got, c)
			}
			plain, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(plain, payload) {
				t.Errorf("decompressed %d bytes differ from the %d-byte payload", len(plain), len(payload))
			}
		})
	}
}

func TestDecompressTruncatedOrCorrupt(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdefghij"), 50000)
	for _, c := range []Compression{Gzip, Bzip2, Xz, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			data := compressed(t, c, payload)
			cases := map[string][]byte{
				"truncated in the middle": data[:len(data)/2],
				"truncated after magic":   data[:6],
				"magic then garbage":      append(append([]byte{}, data[:6]...), bytes.Repeat([]byte{0x5a}, 4096)...),
			}
			for name, in := range cases {
				r, got, err := DecompressStream(bytes.NewReader(in))
				if err != nil {
					t.Fatalf("%s: DecompressStream: %v (damage must be reported by Read)", name, err)
				}
				if got != c {
					t.Errorf("%s: detected %v", name, got)
				}
				_, err = io.ReadAll(r)
				r.Close()
				if err == nil {
					t.Errorf("%s: read succeeded", name)
				} else if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("%s: error %v is not ErrInvalidArgument", name, err)
				}
			}
		})
	}
}

func TestDetectCompression(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Compression
	}{
		{nil, Uncompressed},
		{[]byte("BZh91AY"), Bzip2},
		{[]byte{0x1f, 0x8b, 0x08, 0}, Gzip},
		{[]byte{0x1f, 0x8b, 0x07}, Uncompressed},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, Xz},
		{[]byte{0xfd, '7', 'z', 'X', 'Z'}, Uncompressed},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Zstd},
		{[]byte{0x5e, 0x2a, 0x4d, 0x18, 0}, Zstd},
		{[]byte("ustar"), Uncompressed},
	} {
		if got := DetectCompression(tc.head); got != tc.want {
			t.Errorf("DetectCompression(% x) = %v, want %v", tc.head, got, tc.want)
		}
	}
}

func TestDecompressShortPlainStream(t *testing.T) {
	r, c, err := DecompressStream(bytes.NewReader([]byte("abc")))
	if err != nil || c != Uncompressed {
		t.Fatalf("DecompressStream = %v, %v", c, err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "abc" {
		t.Errorf("read %q, %v", b, err)
	}
}

func TestCompressStreamUnsupported(t *testing.T) {
	for _, tc := range []struct {
		c    Compression
		want error
		text string
	}{
		{Bzip2, errdefs.ErrNotSupported, "unsupported compression format bzip2"},
		{Xz, errdefs.ErrNotSupported, "unsupported compression format xz"},
		{Compression(42), errdefs.ErrInvalidArgument, "unsupported compression format"},
	} {
		_, err := CompressStream(io.Discard, tc.c)
		if !errors.Is(err, tc.want) || err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.text)) {
			t.Errorf("CompressStream(%v) = %v, want %v with %q", tc.c, err, tc.want, tc.text)
		}
	}
}
