package archive

import (
	"bufio"
	"io"
	"sync"
)

// copyBufSize is the size of the buffers file content is copied through.
const copyBufSize = 1 << 20

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, copyBufSize) }}

func getReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}
