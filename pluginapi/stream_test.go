package pluginapi

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
)

// framed returns payload framed as a frameWriter writes it, via Write in chunks of chunk bytes.
func framed(t testing.TB, payload []byte, chunk int) []byte {
	var buf bytes.Buffer
	fw := newFrameWriter(&buf)
	for p := payload; len(p) > 0; {
		k := min(chunk, len(p))
		if _, err := fw.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		chunk int
	}{
		{"empty", 0, 1},
		{"one byte", 1, 1},
		{"small writes", 100_000, 512},
		{"exactly one frame", maxFrame, maxFrame},
		{"large writes unbuffered", 3*maxFrame + 17, 4 * maxFrame},
		{"odd writes across frames", 2*maxFrame + 3, 333_333},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := randomBytes(t, tc.size)
			stream := framed(t, payload, tc.chunk)
			got, err := io.ReadAll(newFrameReader(bytes.NewReader(stream), "diff stream for layer L"))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("payload differs: got %d bytes, want %d", len(got), len(payload))
			}
			// The same through ReadFrom.
			var buf bytes.Buffer
			fw := newFrameWriter(&buf)
			if _, err := fw.ReadFrom(io.LimitReader(bytes.NewReader(payload), int64(len(payload)))); err != nil {
				t.Fatal(err)
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(newFrameReader(&buf, "diff stream for layer L"))
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("ReadFrom round trip: %d bytes, err %v", len(got), err)
			}
		})
	}
}

func TestFrameReaderRejectsDamagedStreams(t *testing.T) {
	payload := randomBytes(t, maxFrame+1000)
	good := framed(t, payload, 4096)
	trailerAt := len(good) - frameHeaderLen - trailerLen
	for _, tc := range []struct {
		name   string
		stream func() []byte
	}{
		{"nothing at all", func() []byte { return nil }},
		{"cut inside a frame header", func() []byte { return good[:2] }},
		{"cut inside a payload", func() []byte { return good[:frameHeaderLen+500] }},
		{"cut at a frame boundary", func() []byte { return good[:frameHeaderLen+maxFrame] }},
		{"cut before the trailer", func() []byte { return good[:trailerAt] }},
		{"cut inside the trailer", func() []byte { return good[:len(good)-10] }},
		{"count mismatch", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint64(b[trailerAt+frameHeaderLen:], uint64(len(payload)+1))
			return b
		}},
		{"digest mismatch", func() []byte {
			b := bytes.Clone(good)
			b[len(b)-1] ^= 1
			return b
		}},
		{"payload flipped", func() []byte {
			b := bytes.Clone(good)
			b[frameHeaderLen+7] ^= 0x80
			return b
		}},
		{"frame longer than allowed", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b, maxFrame+1)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := io.ReadAll(newFrameReader(bytes.NewReader(tc.stream()), "diff stream for layer L"))
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("got %v, want an ErrCorrupt error", err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte("diff stream for layer L")) {
				t.Fatalf("error %q does not name the stream", err)
			}
		})
	}
}

func TestFrameReaderDrainChecksTrailer(t *testing.T) {
	payload := randomBytes(t, 5000)
	good := framed(t, payload, 5000)
	fr := newFrameReader(bytes.NewReader(good), "s")
	if _, err := io.ReadFull(fr, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := fr.drain(); err != nil {
		t.Fatalf("drain of a good stream: %v", err)
	}
	fr = newFrameReader(bytes.NewReader(good[:len(good)-1]), "s")
	if err := fr.drain(); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("drain of a cut stream: %v, want ErrCorrupt", err)
	}
}

// BenchmarkStream measures framed throughput through a real pipe (writer and reader in separate
// goroutines, as across the plugin boundary).
func BenchmarkStream(b *testing.B) {
	const size = 64 << 20
	src := randomBytes(b, maxFrame)
	dst := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		r, w, err := newStreamPipe()
		if err != nil {
			b.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			fw := newFrameWriter(w)
			var err error
			for sent := 0; sent < size && err == nil; sent += len(src) {
				_, err = fw.Write(src)
			}
			if err == nil {
				err = fw.Close()
			}
			w.Close()
			errc <- err
		}()
		fr := newFrameReader(r, "bench")
		var got int64
		for {
			n, err := fr.Read(dst)
			got += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if got != size {
			b.Fatalf("read %d bytes, want %d", got, size)
		}
	}
}
