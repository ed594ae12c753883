package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/ulikunitz/xz"
)

var (
	bzip2Magic = []byte{'B', 'Z', 'h'}
	gzipMagic  = []byte{0x1f, 0x8b, 0x08}
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// DetectCompression looks at the first bytes of a stream (6 are enough) and says how it is
// compressed; anything it does not recognise is Uncompressed. A zstd stream may start with a
// skippable frame.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, bzip2Magic):
		return Bzip2
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	case bytes.HasPrefix(head, xzMagic):
		return Xz
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd
	case len(head) >= 4 && binary.LittleEndian.Uint32(head)&0xfffffff0 == 0x184d2a50:
		return Zstd
	}
	return Uncompressed
}

// DecompressStream detects the compression of r (gzip, bzip2, xz, zstd, or none) and returns the
// plain stream, which the caller must Close (closing it does not close r). Damage in a
// compressed stream (a bad header, bad data, truncation) is reported by Read, as an error
// wrapping errdefs.ErrInvalidArgument and the decompressor's error (io.ErrUnexpectedEOF for a
// cut stream); a clean end is io.EOF. DecompressStream itself fails only when r cannot be read.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(10)
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("detect compression: %w", classify(err))
	}
	c := DetectCompression(head)
	if c == Uncompressed {
		return io.NopCloser(br), c, nil
	}
	return &decompressor{c: c, src: br}, c, nil
}

// decompressor opens the decompressor at the first Read, so a bad header is a Read error.
type decompressor struct {
	c      Compression
	src    io.Reader
	r      io.Reader
	close  func()
	err    error
	opened bool
}

func (d *decompressor) open() error {
	d.opened = true
	switch d.c {
	case Gzip:
		zr, err := gzip.NewReader(d.src)
		if err != nil {
			return err
		}
		d.r, d.close = zr, func() { zr.Close() }
	case Bzip2:
		d.r = bzip2.NewReader(d.src)
	case Xz:
		zr, err := xz.NewReader(d.src)
		if err != nil {
			return err
		}
		d.r = zr
	case Zstd:
		zr, err := zstd.NewReader(d.src, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		d.r, d.close = zr, zr.Close
	}
	return nil
}

func (d *decompressor) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if !d.opened {
		if err := d.open(); err != nil {
			d.err = d.wrap(err)
			return 0, d.err
		}
	}
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		d.err = d.wrap(err)
		return n, d.err
	}
	return n, err
}

func (d *decompressor) wrap(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the stream ended inside a header
	}
	return fmt.Errorf("decompress %s stream: %w: %w", d.c, errdefs.ErrInvalidArgument, err)
}

func (d *decompressor) Close() error {
	if d.close != nil {
		d.close()
		d.close = nil
	}
	if d.err == nil {
		d.err = fmt.Errorf("decompress %s stream: read after close: %w", d.c, errdefs.ErrInvalidArgument)
	}
	return nil
}

// CompressStream returns a writer that compresses into w with c; Close flushes the compressed
// stream but does not close w. Uncompressed, Gzip and Zstd are supported; Bzip2 and Xz return an
// error "unsupported compression format <name>" wrapping errdefs.ErrNotSupported, as the
// established tool does.
func CompressStream(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Uncompressed:
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriter(w), nil
	case Zstd:
		zw, err := zstd.NewWriter(w)
		if err != nil {
			return nil, fmt.Errorf("compress zstd stream: %w", classify(err))
		}
		return zw, nil
	case Bzip2, Xz:
		return nil, fmt.Errorf("unsupported compression format %s: %w", c, errdefs.ErrNotSupported)
	}
	return nil, fmt.Errorf("unsupported compression format %s: %w", c, errdefs.ErrInvalidArgument)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
