package pluginapi

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
)

// Shared-memory streams. A pipe costs every byte two copies in the kernel (into the pipe and out
// of it) plus a page allocated and freed per 4 KiB; profiled, that was the largest part of what
// the plugin boundary added to applying or exporting a layer. A stream instead lends its bytes
// through memory both processes map:
//
//   - an arena: a memfd of shmSlots slots of shmSlotSize bytes, mapped shared by both ends;
//   - a control socket (a SOCK_STREAM Unix socket pair, one end per process), which carries the
//     framing and the flow control.
//
// The writer fills a free slot and sends its descriptor [u32 length > 0][u32 slot]; after the
// last one it sends the trailer [u32 0][u64 payload byte count][u32 CRC-32C of the payload]
// (stream.go). The reader hands the slot's bytes to its caller and, once they are consumed, sends
// the slot's index back [u32 slot]: only then may the writer refill it. Integers are big-endian.
//
// What survives what: each process unmaps its own mapping; the arena lives until both have and
// both descriptors are closed. A writer that dies or gives up (abort) closes its socket end
// without a trailer, and the reader reports a cut stream (ErrCorrupt); a reader that goes away
// closes its end, and the writer's next wait for a slot or send fails. The peer is trusted code
// (the plugin is the host's own child): lengths and slot numbers are checked so that a confused
// peer yields ErrCorrupt, not a crash, but the arena is not protected against a peer that keeps
// writing a slot it handed over.
const (
	shmSlots     = 6
	shmSlotSize  = 512 << 10
	shmDescLen   = 8
	shmReleaseLn = 4
)

// shmStream is one end's resources: its control socket end and its mapping of the arena.
type shmStream struct {
	conn *os.File
	mem  []byte
}

// newShmStreamPair makes the arena and the socket pair. It returns this process's end (mapped)
// and the files to pass to the peer (its socket end and the arena), which the caller closes after
// passing them.
func newShmStreamPair() (local *shmStream, peerConn, arena *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create stream socket: %w", err)
	}
	conn := os.NewFile(uintptr(fds[0]), "stream-control")
	peerConn = os.NewFile(uintptr(fds[1]), "stream-control")
	mfd, err := unix.MemfdCreate("cstorage-stream", unix.MFD_CLOEXEC)
	if err != nil {
		conn.Close()
		peerConn.Close()
		return nil, nil, nil, fmt.Errorf("create stream arena: %w", err)
	}
	arena = os.NewFile(uintptr(mfd), "stream-arena")
	if err := unix.Ftruncate(mfd, shmSlots*shmSlotSize); err != nil {
		conn.Close()
		peerConn.Close()
		arena.Close()
		return nil, nil, nil, fmt.Errorf("size stream arena: %w", err)
	}
	local, err = openShmStream(conn, arena)
	if err != nil {
		conn.Close()
		peerConn.Close()
		arena.Close()
		return nil, nil, nil, err
	}
	return local, peerConn, arena, nil
}

// openShmStream maps arena (which it does not keep open) and adopts conn.
func openShmStream(conn, arena *os.File) (*shmStream, error) {
	var mem []byte
	var merr error
	rc, err := arena.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			var st unix.Stat_t
			if merr = unix.Fstat(int(fd), &st); merr != nil {
				return
			}
			if st.Size != shmSlots*shmSlotSize {
				merr = fmt.Errorf("stream arena is %d bytes, want %d: %w", st.Size, shmSlots*shmSlotSize, errdefs.ErrInvalidArgument)
				return
			}
			mem, merr = unix.Mmap(int(fd), 0, shmSlots*shmSlotSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		})
	}
	if err == nil {
		err = merr
	}
	if err != nil {
		return nil, fmt.Errorf("map stream arena: %w", err)
	}
	return &shmStream{conn: conn, mem: mem}, nil
}

func (s *shmStream) slot(i int) []byte { return s.mem[i*shmSlotSize : (i+1)*shmSlotSize] }

// release unmaps the arena and closes the socket end. The caller guarantees nothing uses mem.
func (s *shmStream) release() {
	if s.mem != nil {
		unix.Munmap(s.mem)
		s.mem = nil
	}
	s.conn.Close()
}

// shmWriter is the writing end of a shared-memory stream. Write and ReadFrom fill slots, waiting
// for the reader to give one back when none is free; Close sends the trailer (the stream is
// complete only if it returns nil); abort ends the stream without one. Either Close or abort must
// be called: both unmap the arena and close the socket end. Errors of the stream itself are
// *streamWriteError, so a caller can tell them from its source's. Not safe for concurrent use,
// except that closing the socket end (conn) from another goroutine makes a blocked call fail.
type shmWriter struct {
	s    *shmStream
	h    hash.Hash
	n    int64
	free []int // slots the writer may fill
	back []byte
	cur  int // slot being filled, -1 none
	fill int // bytes in it
	err  error
	done bool
}

func newShmWriter(s *shmStream) *shmWriter {
	w := &shmWriter{s: s, h: newPayloadHash(), cur: -1}
	for i := shmSlots - 1; i >= 0; i-- {
		w.free = append(w.free, i)
	}
	return w
}

func (w *shmWriter) fail(err error) error {
	if err != nil && w.err == nil {
		w.err = &streamWriteError{err}
	}
	return w.err
}

// buffer returns the free part of the current slot, waiting for the reader to give one back if
// none is free.
func (w *shmWriter) buffer() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.done {
		return nil, w.fail(fmt.Errorf("write after close: %w", io.ErrClosedPipe))
	}
	if w.cur < 0 {
		for len(w.free) == 0 {
			if err := w.readReleases(); err != nil {
				return nil, w.fail(err)
			}
		}
		w.cur = w.free[len(w.free)-1]
		w.free = w.free[:len(w.free)-1]
		w.fill = 0
	}
	return w.s.slot(w.cur)[w.fill:], nil
}

// readReleases waits for at least one slot index from the reader.
func (w *shmWriter) readReleases() error {
	var buf [shmSlots * shmReleaseLn]byte
	n, err := w.s.conn.Read(buf[:])
	if n == 0 && err == nil {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("reader went away: %w", io.ErrClosedPipe)
		}
		return err
	}
	w.back = append(w.back, buf[:n]...)
	for len(w.back) >= shmReleaseLn {
		i := binary.BigEndian.Uint32(w.back)
		w.back = w.back[shmReleaseLn:]
		if i >= shmSlots {
			return fmt.Errorf("reader gave back slot %d of %d: %w", i, shmSlots, errdefs.ErrCorrupt)
		}
		w.free = append(w.free, int(i))
	}
	return nil
}

func (w *shmWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		b, err := w.buffer()
		if err != nil {
			return written, err
		}
		k := copy(b, p)
		w.h.Write(b[:k]) // while the bytes are in cache
		w.fill += k
		written += k
		p = p[k:]
		if w.fill == shmSlotSize {
			if err := w.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// ReadFrom reads r straight into slots.
func (w *shmWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		b, err := w.buffer()
		if err != nil {
			return total, err
		}
		n, err := r.Read(b)
		w.h.Write(b[:n]) // while the bytes are in cache
		w.fill += n
		total += int64(n)
		if w.fill == shmSlotSize {
			if ferr := w.flush(); ferr != nil {
				return total, ferr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// flush hands the current slot to the reader.
func (w *shmWriter) flush() error {
	if w.err != nil || w.cur < 0 || w.fill == 0 {
		return w.err
	}
	w.n += int64(w.fill)
	var d [shmDescLen]byte
	binary.BigEndian.PutUint32(d[:4], uint32(w.fill))
	binary.BigEndian.PutUint32(d[4:], uint32(w.cur))
	w.cur = -1
	_, err := w.s.conn.Write(d[:])
	return w.fail(err)
}

// Close sends what is pending and the trailer, then releases this end.
func (w *shmWriter) Close() error {
	if w.done {
		return w.err
	}
	if err := w.flush(); err == nil {
		_, err := w.s.conn.Write(trailer(w.n, w.h))
		w.fail(err)
	}
	w.done = true
	w.s.release()
	return w.err
}

// abort ends the stream without a trailer (the reader sees it cut) and releases this end.
func (w *shmWriter) abort() {
	if !w.done {
		w.done = true
		w.fail(fmt.Errorf("stream aborted: %w", io.ErrClosedPipe))
		w.s.release()
	}
}

// shmReader is the reading end of a shared-memory stream. Read returns io.EOF only after a valid
// trailer, and an ErrCorrupt error for a stream cut short or whose trailer does not match; errors
// are sticky. Read checks each frame's descriptor and copies the bytes out of the arena, folding
// them into the CRC as they are copied, while they are in cache (as the writer does as they are
// copied in); a slot goes back to the writer once its bytes are consumed. A read-ahead goroutine
// hashing frames beside the consumer measured no better. close releases this end; it may be called from
// another goroutine than Read's, and a Read running or blocked then fails.
type shmReader struct {
	what string
	h    hash.Hash
	n    int64
	in   []byte // unparsed bytes from the socket

	mu     sync.Mutex // guards s.mem against close while Read copies from it
	s      *shmStream
	closed bool

	cur  int    // slot being consumed, -1 none
	left []byte // its unread bytes
	err  error
}

func newShmReader(s *shmStream, what string) *shmReader {
	return &shmReader{s: s, what: what, h: newPayloadHash(), cur: -1}
}

func (r *shmReader) cut(cause error) error {
	if cause == io.EOF || cause == io.ErrUnexpectedEOF {
		return fmt.Errorf("%s cut after %d bytes: %w", r.what, r.n, errdefs.ErrCorrupt)
	}
	return fmt.Errorf("%s cut after %d bytes (%v): %w", r.what, r.n, cause, errdefs.ErrCorrupt)
}

// need reads from the socket until r.in holds at least k bytes.
func (r *shmReader) need(k int) error {
	for len(r.in) < k {
		var buf [256]byte
		n, err := r.s.conn.Read(buf[:])
		r.in = append(r.in, buf[:n]...)
		if len(r.in) >= k {
			return nil
		}
		if n == 0 && err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// next gives the current slot back and makes the next frame current; false at the end.
func (r *shmReader) next() bool {
	if r.err != nil {
		return false
	}
	if r.cur >= 0 {
		var b [shmReleaseLn]byte
		binary.BigEndian.PutUint32(b[:], uint32(r.cur))
		r.cur, r.left = -1, nil
		// A writer that is done no longer reads these: a failure here is not the stream's.
		_, _ = r.s.conn.Write(b[:])
	}
	if err := r.need(4); err != nil {
		r.err = r.cut(err)
		return false
	}
	l := binary.BigEndian.Uint32(r.in)
	if l == 0 {
		r.err = r.trailer()
		return false
	}
	if err := r.need(shmDescLen); err != nil {
		r.err = r.cut(err)
		return false
	}
	slot := binary.BigEndian.Uint32(r.in[4:])
	r.in = r.in[shmDescLen:]
	if l > shmSlotSize || slot >= shmSlots {
		r.err = fmt.Errorf("%s: frame of %d bytes in slot %d after %d bytes is out of bounds: %w", r.what, l, slot, r.n, errdefs.ErrCorrupt)
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.err = fmt.Errorf("%s: read after close: %w", r.what, errdefs.ErrUnavailable)
		return false
	}
	r.cur = int(slot)
	r.left = r.s.slot(r.cur)[:l]
	r.n += int64(l)
	return true
}

func (r *shmReader) trailer() error {
	if err := r.need(frameHeaderLen + trailerLen); err != nil {
		return r.cut(err)
	}
	t := r.in[frameHeaderLen : frameHeaderLen+trailerLen]
	r.in = r.in[frameHeaderLen+trailerLen:]
	count := int64(binary.BigEndian.Uint64(t[:8]))
	switch {
	case count != r.n:
		return fmt.Errorf("%s: trailer counts %d bytes, stream carried %d: %w", r.what, count, r.n, errdefs.ErrCorrupt)
	case subtle.ConstantTimeCompare(r.h.Sum(nil), t[8:]) != 1:
		return fmt.Errorf("%s: CRC-32C of the %d bytes does not match the trailer: %w", r.what, r.n, errdefs.ErrCorrupt)
	}
	return io.EOF
}

func (r *shmReader) Read(p []byte) (int, error) {
	for len(r.left) == 0 {
		if !r.next() {
			return 0, r.err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, fmt.Errorf("%s: read after close: %w", r.what, errdefs.ErrUnavailable)
	}
	n := copy(p, r.left)
	r.h.Write(p[:n]) // what the caller got, while it is in cache
	r.left = r.left[n:]
	return n, nil
}

// prime waits for the first frame (or the trailer of an empty stream) without consuming payload.
func (r *shmReader) prime() error {
	_, err := r.Read(nil)
	if err == io.EOF {
		return nil
	}
	return err
}

// drain reads the rest of the stream, to its trailer. It returns nil only for a valid trailer.
func (r *shmReader) drain() error {
	for {
		r.mu.Lock()
		if !r.closed {
			r.h.Write(r.left)
		}
		r.mu.Unlock()
		r.left = nil
		if !r.next() {
			break
		}
	}
	if r.err == io.EOF {
		return nil
	}
	return r.err
}

// close releases this end: later or blocked reads fail. Idempotent.
func (r *shmReader) close() {
	r.s.conn.Close() // unblocks a Read waiting on the socket
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.s.release()
	}
}
