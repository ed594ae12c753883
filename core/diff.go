package core

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/archive/tar"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// countingDigester counts and digests what passes through it, and remembers the first read
// error so that a stream the source cut is reported as such (not as the driver's view of it).
type countingDigester struct {
	r      io.Reader
	d      digest.Digester
	n      int64
	readEr error
}

func newCountingDigester(r io.Reader) *countingDigester {
	return &countingDigester{r: r, d: digest.Canonical.Digester()}
}

func (c *countingDigester) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.d.Hash().Write(p[:n])
	if err != nil && err != io.EOF && c.readEr == nil {
		c.readEr = err
	}
	return n, err
}

// applyDiff feeds diff into layer l through the driver and records the layer's content
// metadata. The stream is decompressed here, split by tar-split into <id>.tar-split.gz (so Diff
// can rebuild the byte-identical tar), and digested twice: the compressed digest and size of the
// bytes as given, and the uncompressed digest (diff ID) and size of the tar. The driver gets the
// plain tar. The tar-split file is written under a temporary name and synced before being
// renamed into place; the caller saves the record. When ctx ends (the caller's cancellation, or
// Close) the read of diff is abandoned and applyDiff returns, even if diff never returns from
// Read. Write lock held.
func (s *Store) applyDiff(ctx context.Context, d pluginapi.Driver, l *Layer, diff io.Reader) (int64, error) {
	compressed := newCountingDigester(abortable(ctx, diff))
	plain, compression, err := archive.DecompressStream(compressed)
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, withClass(err, errdefs.ErrInvalidArgument))
	}
	defer plain.Close()

	final := s.tarSplitFor(l)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, withClass(err, errdefs.ErrUnavailable))
	}
	removeTmp := func() { f.Close(); os.Remove(tmp) }
	gz := gzip.NewWriter(f)
	split, done, err := asm.NewInputTarStreamWithDone(plain, storage.NewJSONPacker(gz), nil)
	if err != nil {
		removeTmp()
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, withClass(err, errdefs.ErrInvalidArgument))
	}
	uncompressed := newCountingDigester(split)
	size, applyErr := d.ApplyDiff(ctx, l.ID, l.Parent, uncompressed)
	if applyErr == nil {
		// The driver may stop at the end-of-archive marker: read the padding too, so the
		// digests cover the whole stream.
		_, applyErr = io.Copy(io.Discard, uncompressed)
	}
	split.Close()
	splitErr := <-done
	if srcErr := firstErr(compressed.readEr, uncompressed.readEr); srcErr != nil {
		// The source stream itself was bad (not a tar, truncated, bad compression): that is
		// the error to report, whatever the driver made of the cut stream.
		removeTmp()
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, withClass(srcErr, errdefs.ErrInvalidArgument))
	}
	if applyErr != nil {
		removeTmp()
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, s.driverErr(applyErr))
	}
	if splitErr != nil {
		removeTmp()
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, withClass(splitErr, errdefs.ErrInvalidArgument))
	}
	if err := gz.Close(); err != nil {
		removeTmp()
		return 0, fmt.Errorf("apply diff to layer %s: write tar-split: %w", l.ID, withClass(err, errdefs.ErrUnavailable))
	}
	if err := f.Sync(); err != nil {
		removeTmp()
		return 0, fmt.Errorf("apply diff to layer %s: sync tar-split: %w", l.ID, withClass(err, errdefs.ErrUnavailable))
	}
	f.Close()
	hadContent := l.UncompressedDigest != ""
	if hadContent {
		// A second diff on top of the first: the tar-split no longer describes the layer, so
		// Diff must ask the driver.
		os.Remove(tmp)
		if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, withClass(err, errdefs.ErrUnavailable))
		}
	} else if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, withClass(err, errdefs.ErrUnavailable))
	}
	l.CompressedDigest = compressed.d.Digest()
	l.CompressedSize = compressed.n
	l.UncompressedDigest = uncompressed.d.Digest()
	l.UncompressedSize = uncompressed.n
	l.CompressionType = compression
	if !hadContent {
		uids, gids, err := idSets(final)
		if err != nil {
			return 0, fmt.Errorf("apply diff to layer %s: read back tar-split: %w", l.ID, withClass(err, errdefs.ErrCorrupt))
		}
		l.UIDs, l.GIDs = uids, gids
	}
	return size, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// idSets returns the sorted sets of UIDs and GIDs of the headers recorded in a tar-split file.
func idSets(path string) (uids, gids []uint32, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, err
	}
	defer gz.Close()
	u, g := map[uint32]bool{}, map[uint32]bool{}
	err = asm.IterateHeaders(storage.NewJSONUnpacker(gz), func(h *tar.Header) error {
		u[uint32(h.Uid)] = true
		g[uint32(h.Gid)] = true
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for k := range u {
		uids = append(uids, k)
	}
	for k := range g {
		gids = append(gids, k)
	}
	slices.Sort(uids)
	slices.Sort(gids)
	return uids, gids, nil
}

// ApplyDiff extracts a (possibly compressed) tar into an existing layer and records the
// layer's content metadata. It returns the bytes of file content written.
func (s *Store) ApplyDiff(ctx context.Context, ref string, diff io.Reader) (int64, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", ref, err)
	}
	defer end()
	l, err := s.rwLayer(ref)
	if err != nil {
		return 0, fmt.Errorf("apply diff: %w", err)
	}
	d, err := s.driver(ctx)
	if err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, err)
	}
	// No incomplete flag here: the layer existed before and may have children, images or
	// containers; a crash midway leaves its old record, which check reports as damaged
	// content rather than a recovery that would delete what others depend on.
	saved := copyLayer(l)
	size, err := s.applyDiff(ctx, d, l, diff)
	if err != nil {
		*l = saved
		return 0, err
	}
	if err := s.layers.save(); err != nil {
		return 0, fmt.Errorf("apply diff to layer %s: %w", l.ID, err)
	}
	return size, nil
}

// DiffOptions are the options of Diff.
type DiffOptions struct {
	// Compression of the returned stream; nil = the compression the layer was created with.
	Compression *archive.Compression
}

// Diff returns the tar of the changes from layer from ("" = to's parent) to layer to. For a
// layer created from a tar and diffed against its parent, the tar is rebuilt from the
// tar-split with the file contents read from the mounted layer, byte-identical to the one
// applied; otherwise the driver computes it. The caller must Close the stream, which releases
// the mount taken for it (taking the Store's locks again, so it must not be called from inside
// another method of the Store).
//
// A compression archive.CompressStream cannot write (bzip2, xz), asked for or recorded, is
// refused before anything is mounted or started, with an error wrapping ErrNotSupported that
// names the compression and the layer.
func (s *Store) Diff(ctx context.Context, from, to string, opts DiffOptions) (_ io.ReadCloser, retErr error) {
	end, err := s.begin(true)
	if err != nil {
		return nil, fmt.Errorf("diff layer %s: %w", to, err)
	}
	defer end()
	l, ok := s.getLayer(to)
	if !ok {
		return nil, fmt.Errorf("diff layer %q: %w", to, ErrLayerUnknown)
	}
	fromID := l.Parent
	if from != "" {
		f, ok := s.getLayer(from)
		if !ok {
			return nil, fmt.Errorf("diff layer %s: from layer %q: %w", l.ID, from, ErrLayerUnknown)
		}
		fromID = f.ID
	}
	compression := l.CompressionType
	if opts.Compression != nil {
		compression = *opts.Compression
	}
	// The compressor is made first: an unsupported compression fails before any work.
	pr, pw := io.Pipe()
	w, err := archive.CompressStream(pw, compression)
	if err != nil {
		return nil, fmt.Errorf("diff layer %s: compress as %s: %w", l.ID, compression, err)
	}
	// The stream outlives this method: its context ends when it is closed or the Store is.
	ctx, done := s.opContext(ctx)
	defer func() {
		if retErr != nil {
			pr.Close() // so that w's Close writes nothing
			w.Close()
			done()
		}
	}()
	d, err := s.driver(ctx)
	if err != nil {
		return nil, fmt.Errorf("diff layer %s: %w", l.ID, err)
	}
	var rc io.ReadCloser
	if _, statErr := os.Stat(s.tarSplitFor(l)); fromID == l.Parent && statErr == nil {
		var ts *tarSplitStream
		if ts, err = s.diffFromTarSplit(ctx, l); err == nil {
			rc = ts
		}
	} else {
		rc, err = d.Diff(ctx, l.ID, fromID)
		err = s.driverErr(err)
	}
	if err != nil {
		return nil, fmt.Errorf("diff layer %s: %w", l.ID, err)
	}
	// From here on nothing fails while s.mu is held: closing rc (which takes s.mu for a
	// tar-split stream) happens only through the returned stream's Close.
	if compression == archive.Uncompressed {
		return &closeFunc{Reader: rc, close: func() error { defer done(); return rc.Close() }}, nil
	}
	return compressReader(rc, pr, pw, w, done), nil
}

// tarSplitStream is the tar of a layer rebuilt from its tar-split and its mounted contents.
// Close releases the files and then unmounts the layer, taking the Store's locks: it must be
// called with s.mu free (never from inside a method of the Store).
type tarSplitStream struct {
	io.Reader
	s      *Store
	id     string
	files  func() error // closes the tar-split file and its readers
	closed bool
}

// diffFromTarSplit mounts l and returns the original tar, rebuilt from the tar-split. On error
// nothing stays mounted or open. Write lock held.
func (s *Store) diffFromTarSplit(ctx context.Context, l *Layer) (*tarSplitStream, error) {
	f, err := os.Open(s.tarSplitFor(l))
	if err != nil {
		return nil, withClass(err, errdefs.ErrUnavailable)
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", f.Name(), withClass(err, errdefs.ErrCorrupt))
	}
	mountpoint, err := s.mountLayer(ctx, l, MountOptions{}, true)
	if err != nil {
		gz.Close()
		f.Close()
		return nil, err
	}
	out := asm.NewOutputTarStream(storage.NewPathFileGetter(mountpoint), storage.NewJSONUnpacker(gz))
	return &tarSplitStream{Reader: out, s: s, id: l.ID, files: func() error {
		return errors.Join(out.Close(), gz.Close(), f.Close())
	}}, nil
}

// Close releases the files and the mount. s.mu must be free.
func (t *tarSplitStream) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	errs := []error{t.files()}
	end, err := t.s.begin(true)
	if err != nil {
		errs = append(errs, fmt.Errorf("unmount layer %s after diff: %w", t.id, err))
	} else {
		if _, err := t.s.unmountLayer(t.s.ctx, t.id, false); err != nil && !errors.Is(err, ErrLayerNotMounted) {
			errs = append(errs, err)
		}
		end()
	}
	return errors.Join(errs...)
}

type closeFunc struct {
	io.Reader
	close func() error
	done  bool
}

func (c *closeFunc) Close() error {
	if c.done {
		return nil
	}
	c.done = true
	return c.close()
}

// compressReader returns rc compressed by w, which writes into pw, produced by a goroutine.
// Closing the result stops the goroutine and waits for it before closing rc (so rc is never
// read and closed at once), then calls done.
func compressReader(rc io.ReadCloser, pr *io.PipeReader, pw *io.PipeWriter, w io.WriteCloser, done func()) io.ReadCloser {
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, err := io.Copy(w, rc)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	return &closeFunc{Reader: pr, close: func() error {
		defer done()
		pr.Close()
		<-finished
		return rc.Close()
	}}
}

// Changes lists the paths that differ between layer from ("" = to's parent) and layer to.
func (s *Store) Changes(ctx context.Context, from, to string) ([]archive.Change, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(false)
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", to, err)
	}
	defer end()
	l, fromID, d, err := s.diffPair(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", to, err)
	}
	ch, err := d.Changes(ctx, l.ID, fromID)
	if err != nil {
		return nil, fmt.Errorf("changes of layer %s: %w", l.ID, s.driverErr(err))
	}
	return ch, nil
}

// DiffSize returns the bytes of file content Diff(from, to) would carry.
func (s *Store) DiffSize(ctx context.Context, from, to string) (int64, error) {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(false)
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", to, err)
	}
	defer end()
	l, fromID, d, err := s.diffPair(ctx, from, to)
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", to, err)
	}
	n, err := d.DiffSize(ctx, l.ID, fromID)
	if err != nil {
		return 0, fmt.Errorf("diff size of layer %s: %w", l.ID, s.driverErr(err))
	}
	return n, nil
}

func (s *Store) diffPair(ctx context.Context, from, to string) (*Layer, string, pluginapi.Driver, error) {
	l, ok := s.getLayer(to)
	if !ok {
		return nil, "", nil, fmt.Errorf("layer %q: %w", to, ErrLayerUnknown)
	}
	fromID := l.Parent
	if from != "" {
		f, ok := s.getLayer(from)
		if !ok {
			return nil, "", nil, fmt.Errorf("from layer %q: %w", from, ErrLayerUnknown)
		}
		fromID = f.ID
	}
	d, err := s.driver(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	return l, fromID, d, nil
}
