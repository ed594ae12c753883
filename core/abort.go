package core

import (
	"context"
	"fmt"
	"io"

	"github.com/pluggable-storage/storage/errdefs"
)

// abortReader is a caller's stream that stops when ctx ends, even if the stream's Read never
// returns (a pipe nobody writes, a stdin that never ends): each Read runs in a goroutine into
// a private buffer, and a Read that is still waiting when ctx ends is abandoned, left to finish
// (or not) on its own. After that every Read returns the same error, of class ErrUnavailable
// (Close) or the context's own error (the caller's cancellation or deadline).
//
// Only one Read at a time, as io.Reader allows; the buffer is never touched after an abandoned
// Read, so the goroutine left behind races with nothing.
type abortReader struct {
	ctx     context.Context
	r       io.Reader
	buf     []byte
	pending chan readResult // the Read in flight, nil if none
	err     error           // set once ctx ended
}

type readResult struct {
	n   int
	err error
}

const abortReadSize = 64 << 10

// abortable returns r made to stop when ctx ends.
func abortable(ctx context.Context, r io.Reader) io.Reader {
	return &abortReader{ctx: ctx, r: r}
}

func (a *abortReader) Read(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if a.pending == nil {
		if a.buf == nil {
			a.buf = make([]byte, abortReadSize)
		}
		buf := a.buf[:min(len(p), len(a.buf))]
		ch := make(chan readResult, 1)
		go func() {
			n, err := a.r.Read(buf)
			ch <- readResult{n, err}
		}()
		a.pending = ch
	}
	select {
	case res := <-a.pending:
		a.pending = nil
		return copy(p, a.buf[:res.n]), res.err
	case <-a.ctx.Done():
		a.buf = nil // the abandoned Read may still write into the old buffer
		a.err = fmt.Errorf("read diff: %w", withClass(context.Cause(a.ctx), errdefs.ErrUnavailable))
		return 0, a.err
	}
}
