package pluginapi

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
)

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// streamPair makes a shared-memory stream and maps both ends in this process, as the host and
// the plugin each do.
func streamPair(t testing.TB) (w, r *shmStream) {
	t.Helper()
	local, peerConn, arena, err := newShmStreamPair()
	if err != nil {
		t.Fatal(err)
	}
	peer, err := openShmStream(peerConn, arena)
	arena.Close()
	if err != nil {
		local.release()
		peerConn.Close()
		t.Fatal(err)
	}
	return local, peer
}

// sendAll writes payload to a writer on ws, through ReadFrom or in chunks of chunk bytes, then
// closes it; it returns the writer's error.
func sendAll(ws *shmStream, payload []byte, chunk int) error {
	fw := newShmWriter(ws)
	var err error
	if chunk == 0 {
		_, err = fw.ReadFrom(bytes.NewReader(payload))
	} else {
		for p := payload; len(p) > 0 && err == nil; {
			k := min(len(p), chunk)
			_, err = fw.Write(p[:k])
			p = p[k:]
		}
	}
	if err != nil {
		fw.abort()
		return err
	}
	return fw.Close()
}

func TestStreamRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		chunk int // 0: ReadFrom
	}{
		{"empty", 0, 1},
		{"empty through ReadFrom", 0, 0},
		{"one byte", 1, 1},
		{"small writes", 100_000, 512},
		{"exactly one slot", shmSlotSize, shmSlotSize},
		{"more slots than the arena, odd writes", 3*shmSlots*shmSlotSize + 17, 333_333},
		{"more slots than the arena, ReadFrom", 3*shmSlots*shmSlotSize + 17, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := randomBytes(t, tc.size)
			ws, rs := streamPair(t)
			errc := make(chan error, 1)
			go func() { errc <- sendAll(ws, payload, tc.chunk) }()
			fr := newShmReader(rs, "diff stream for layer L")
			defer fr.close()
			got, err := io.ReadAll(fr)
			if werr := <-errc; werr != nil {
				t.Fatalf("write: %v", werr)
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("payload differs: got %d bytes, want %d", len(got), len(payload))
			}
		})
	}
}

// rawWriter plays a writer byte by byte on the control socket, to build damaged streams.
type rawWriter struct {
	t  *testing.T
	ws *shmStream
	h  *bytes.Buffer // the payload sent so far, for a true trailer
}

func (w rawWriter) frame(slot int, payload []byte) {
	copy(w.ws.slot(slot), payload)
	w.h.Write(payload)
	var d [shmDescLen]byte
	binary.BigEndian.PutUint32(d[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(d[4:], uint32(slot))
	w.raw(d[:])
}

func (w rawWriter) raw(b []byte) {
	if _, err := w.ws.conn.Write(b); err != nil {
		w.t.Fatal(err)
	}
}

func (w rawWriter) trailer(count int64, payload []byte) []byte {
	h := newPayloadHash()
	h.Write(payload)
	return trailer(count, h)
}

func TestStreamReaderRejectsDamagedStreams(t *testing.T) {
	payload := randomBytes(t, 1000)
	for _, tc := range []struct {
		name  string
		write func(w rawWriter)
	}{
		{"nothing at all", func(w rawWriter) {}},
		{"cut inside a descriptor", func(w rawWriter) { w.raw([]byte{0, 0, 3}) }},
		{"cut after a frame", func(w rawWriter) { w.frame(0, payload) }},
		{"cut inside the trailer", func(w rawWriter) {
			w.frame(0, payload)
			w.raw(w.trailer(int64(len(payload)), payload)[:10])
		}},
		{"count mismatch", func(w rawWriter) {
			w.frame(0, payload)
			w.raw(w.trailer(int64(len(payload)+1), payload))
		}},
		{"digest mismatch", func(w rawWriter) {
			w.frame(0, payload)
			w.raw(w.trailer(int64(len(payload)), randomBytes(t, len(payload))))
		}},
		{"frame longer than a slot", func(w rawWriter) {
			var d [shmDescLen]byte
			binary.BigEndian.PutUint32(d[:4], shmSlotSize+1)
			w.raw(d[:])
		}},
		{"slot out of the arena", func(w rawWriter) {
			var d [shmDescLen]byte
			binary.BigEndian.PutUint32(d[:4], 10)
			binary.BigEndian.PutUint32(d[4:], shmSlots)
			w.raw(d[:])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, rs := streamPair(t)
			tc.write(rawWriter{t: t, ws: ws, h: &bytes.Buffer{}})
			ws.release() // the writer is gone
			fr := newShmReader(rs, "diff stream for layer L")
			defer fr.close()
			_, err := io.ReadAll(fr)
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("got %v, want an ErrCorrupt error", err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte("diff stream for layer L")) {
				t.Fatalf("error %q does not name the stream", err)
			}
		})
	}
}

func TestStreamDrainChecksTrailer(t *testing.T) {
	payload := randomBytes(t, 3*shmSlotSize)
	for _, complete := range []bool{true, false} {
		ws, rs := streamPair(t)
		go func() {
			fw := newShmWriter(ws)
			fw.Write(payload)
			if complete {
				fw.Close()
			} else {
				fw.abort()
			}
		}()
		fr := newShmReader(rs, "s")
		if _, err := io.ReadFull(fr, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		err := fr.drain()
		fr.close()
		if complete && err != nil {
			t.Errorf("drain of a good stream: %v", err)
		}
		if !complete && !errors.Is(err, errdefs.ErrCorrupt) {
			t.Errorf("drain of an aborted stream: %v, want ErrCorrupt", err)
		}
	}
}

// TestStreamConcurrent pushes several streams at once, with sizes around slot boundaries.
func TestStreamConcurrent(t *testing.T) {
	sizes := []int{0, 1, shmSlotSize - 1, shmSlotSize, shmSlotSize + 1, 2*shmSlots*shmSlotSize + 12345}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, size := range sizes {
				payload := randomBytes(t, size+g)
				ws, rs := streamPair(t)
				errc := make(chan error, 1)
				go func() { errc <- sendAll(ws, payload, []int{0, 70_001}[i%2]) }()
				fr := newShmReader(rs, "s")
				got, err := io.ReadAll(fr)
				fr.close()
				if err = errors.Join(<-errc, err); err != nil {
					t.Errorf("stream of %d bytes: %v", len(payload), err)
				} else if !bytes.Equal(got, payload) {
					t.Errorf("stream of %d bytes: read back %d bytes that differ", len(payload), len(got))
				}
			}
		}()
	}
	wg.Wait()
}

// TestStreamReaderGoneFailsWriter: a reader that goes away mid-stream makes the writer's calls
// fail with a stream error (not a source error), instead of blocking for a slot.
func TestStreamReaderGoneFailsWriter(t *testing.T) {
	ws, rs := streamPair(t)
	errc := make(chan error, 1)
	go func() {
		fw := newShmWriter(ws)
		_, err := fw.ReadFrom(io.LimitReader(zeroReader{}, 64*shmSlotSize))
		if err == nil {
			err = fw.Close()
		} else {
			fw.abort()
		}
		errc <- err
	}()
	fr := newShmReader(rs, "s")
	if _, err := io.ReadFull(fr, make([]byte, shmSlotSize+10)); err != nil {
		t.Fatal(err)
	}
	fr.close()
	err := <-errc
	var werr *streamWriteError
	if !errors.As(err, &werr) {
		t.Fatalf("writer error %v, want a stream write error", err)
	}
	if _, err := fr.Read(make([]byte, 10)); err == nil {
		t.Error("read after close succeeded")
	}
}

// TestStreamCloseUnblocksRead: close from another goroutine ends a Read waiting for a frame.
func TestStreamCloseUnblocksRead(t *testing.T) {
	ws, rs := streamPair(t)
	defer ws.release()
	fr := newShmReader(rs, "s")
	errc := make(chan error, 1)
	go func() {
		_, err := fr.Read(make([]byte, 10))
		errc <- err
	}()
	fr.close()
	if err := <-errc; err == nil {
		t.Fatal("read of a closed stream succeeded")
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// BenchmarkStream measures the stream's throughput (writer and reader in separate goroutines, as
// across the plugin boundary).
func BenchmarkStream(b *testing.B) {
	const size = 256 << 20
	src := randomBytes(b, 1<<20)
	dst := make([]byte, 1<<20)
	b.SetBytes(size)
	for b.Loop() {
		ws, rs := streamPair(b)
		errc := make(chan error, 1)
		go func() {
			fw := newShmWriter(ws)
			var err error
			for sent := 0; sent < size && err == nil; sent += len(src) {
				_, err = fw.Write(src)
			}
			if err == nil {
				err = fw.Close()
			} else {
				fw.abort()
			}
			errc <- err
		}()
		fr := newShmReader(rs, "bench")
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
		fr.close()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if got != size {
			b.Fatalf("read %d bytes, want %d", got, size)
		}
	}
}
