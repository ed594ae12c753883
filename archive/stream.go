package archive

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// NewStream returns the reading end of a stream that produce writes on demand, for a Diff that
// must return before its tar is written.
//
// The stream runs at most once, decided by the first of these calls:
//   - Read: produce runs in a goroutine writing into an io.Pipe, and Read returns what it wrote,
//     then its error (io.EOF after a produce that returned nil).
//   - WriteTo: produce runs in the caller's goroutine straight into the destination, one copy of
//     every byte fewer (io.Copy and the plugin server take this path).
//   - Close: produce never runs.
//
// release runs exactly once, after produce has returned (or instead of it, on an early Close);
// its error is joined to produce's. Close makes a running produce's writes fail, waits for
// release and returns its error. The stream is safe for one reader and a concurrent Close.
func NewStream(produce func(w io.Writer) error, release func() error) io.ReadCloser {
	return &stream{produce: produce, release: release, done: make(chan struct{})}
}

type stream struct {
	produce func(w io.Writer) error
	release func() error

	start      sync.Once // the first of Read, WriteTo and Close decides how the stream runs
	pr         *io.PipeReader
	done       chan struct{} // closed once release has returned; releaseErr is set before
	releaseErr error
	closeOnce  sync.Once
}

// run produces into w, then releases.
func (s *stream) run(w io.Writer) error {
	err := s.produce(w)
	s.releaseErr = s.release()
	close(s.done)
	return errors.Join(err, s.releaseErr)
}

func (s *stream) Read(p []byte) (int, error) {
	s.start.Do(func() {
		pr, pw := io.Pipe()
		s.pr = pr
		go func() { pw.CloseWithError(s.run(pw)) }() // nil closes cleanly: the reader sees io.EOF
	})
	if s.pr == nil {
		return 0, fmt.Errorf("read stream: %w", io.ErrClosedPipe)
	}
	return s.pr.Read(p)
}

// WriteTo produces straight into w if the stream has not been read yet, and copies what is left
// of it otherwise.
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	direct := false
	s.start.Do(func() { direct = true })
	if !direct {
		if s.pr == nil {
			return 0, fmt.Errorf("read stream: %w", io.ErrClosedPipe)
		}
		return io.Copy(w, s.pr)
	}
	cw := &countingWriter{w: w}
	err := s.run(cw)
	return cw.n, err
}

func (s *stream) Close() error {
	s.closeOnce.Do(func() {
		s.start.Do(func() {
			s.releaseErr = s.release()
			close(s.done)
		})
		if s.pr != nil {
			s.pr.Close()
		}
	})
	<-s.done
	return s.releaseErr
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
