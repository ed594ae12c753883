package conformance

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// watchdog bounds how long a protocol case waits for a call that must return; it guards against
// a hang and asserts nothing about speed.
const watchdog = 2 * time.Minute

// protocolCases check what crosses the plugin boundary. They run over gRPC in both modes; the
// ones that kill the plugin need a real process.
func protocolCases() []testCase {
	needsProcess := func(cfg Config) string {
		if cfg.Executable == "" {
			return "needs the driver as a plugin process (Config.Executable); this run is in-process"
		}
		return ""
	}
	return []testCase{
		{name: "ErrorClassesCrossBoundary", run: testErrorClasses},
		{name: "CutApplyStream", run: testCutApplyStream},
		{name: "ContextCancel", run: testContextCancel},
		{name: "PluginKilledMidApply", run: testKilledMidApply, needs: needsProcess},
		{name: "PluginKilledMidDiff", run: testKilledMidDiff, needs: needsProcess},
	}
}

// wantOnlyClass is wantClass, and also checks that err wraps no other class.
func wantOnlyClass(t testing.TB, what string, err, class error, names ...string) {
	t.Helper()
	wantClass(t, what, err, class, names...)
	for _, c := range errdefs.Classes {
		if c != class && errors.Is(err, c) {
			t.Fatalf("%s: error %q wraps class %q as well as %q", what, err, c, class)
		}
	}
}

// testErrorClasses: errors come back to the caller with their class (errors.Is) and their text
// naming the ID or key.
func testErrorClasses(t *testing.T, h *harness) {
	ctx := t.Context()
	h.create(t, "classes", "")
	_, err := h.d.Get(ctx, "no-such-layer", pluginapi.MountOpts{})
	wantOnlyClass(t, "Get of a missing layer", err, errdefs.ErrNotFound, "no-such-layer")
	err = h.d.Create(ctx, "classes", "", pluginapi.CreateOpts{})
	wantOnlyClass(t, "Create of an existing ID", err, errdefs.ErrAlreadyExists, "classes")
	err = h.d.Create(ctx, "bad-opt", "", pluginapi.CreateOpts{StorageOpt: map[string]string{"no_such_storage_opt": "1"}})
	wantOnlyClass(t, "Create with an unknown storage option", err, errdefs.ErrInvalidArgument, "no_such_storage_opt")
	if !h.cfg.Quota {
		err = h.d.Create(ctx, "sized", "", pluginapi.CreateOpts{StorageOpt: map[string]string{"size": "10M"}})
		wantOnlyClass(t, "Create with a size on a driver without quota", err, errdefs.ErrNotSupported, "sized")
	}
	_, err = h.d.Changes(ctx, "classes", "no-such-parent")
	wantOnlyClass(t, "Changes against a missing layer", err, errdefs.ErrNotFound, "no-such-parent")
}

// tarWithFile returns a tar holding one regular file of size bytes.
func tarWithFile(name string, size int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := randomContent(size, int64(size))
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size), ModTime: time.Unix(1700000000, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		panic(err)
	}
	if _, err := tw.Write(content); err != nil {
		panic(err)
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// testCutApplyStream: ApplyDiff of a stream that breaks or ends midway fails; the driver stays
// usable and a whole stream then applies.
func testCutApplyStream(t *testing.T, h *harness) {
	ctx := t.Context()
	whole := tarWithFile("big", 256<<10)
	half := whole[:len(whole)/2]
	cases := []struct {
		name string
		r    io.Reader
	}{
		{"ReaderError", &failingReader{data: half, err: errors.New("injected: the source broke")}},
		{"Truncated", &failingReader{data: half, err: io.EOF}},
		{"Garbage", bytes.NewReader(bytes.Repeat([]byte("not a tar header "), 100))},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("cut-%d", i)
			h.create(t, id, "")
			n, err := h.d.ApplyDiff(ctx, id, "", c.r)
			if err == nil {
				t.Fatalf("ApplyDiff of a cut stream succeeded (%d bytes)", n)
			}
			ok, err := h.d.Exists(ctx, id)
			if err != nil || !ok {
				t.Fatalf("Exists(%s) = %v, %v after a failed ApplyDiff", id, ok, err)
			}
		})
	}
	h.create(t, "cut-then-whole", "")
	n, err := h.d.ApplyDiff(ctx, "cut-then-whole", "", bytes.NewReader(whole))
	if err != nil || n != 256<<10 {
		t.Fatalf("ApplyDiff of a whole stream after cut ones = %d, %v; want %d", n, err, 256<<10)
	}
	h.checkFile(t, "cut-then-whole", "big", randomContent(256<<10, 256<<10))
}

// applyResult is what an ApplyDiff running in a goroutine returned.
type applyResult struct {
	n   int64
	err error
}

// trickleReader is a live but slow source: a tar holding one file of size zero bytes, of which
// it serves the first fast bytes at once (then closes started) and the rest 4 KiB per Read with
// a pause, so a call reading it is still in flight when the test acts, without a stalled Read
// that no one could interrupt. It fails once done is closed.
type trickleReader struct {
	header    []byte
	remaining int64 // zero bytes still to serve: file content and the end-of-archive blocks
	served    int64
	fast      int64
	started   chan struct{}
	done      <-chan struct{}
}

func newTrickleReader(size, fast int64, done <-chan struct{}) *trickleReader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: "trickle", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: time.Unix(1700000000, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		panic(err)
	}
	return &trickleReader{header: buf.Bytes(), remaining: size + 1024, fast: fast, started: make(chan struct{}), done: done}
}

func (r *trickleReader) Read(p []byte) (int, error) {
	select {
	case <-r.done:
		return 0, errors.New("trickle source closed")
	default:
	}
	if r.served >= r.fast {
		time.Sleep(5 * time.Millisecond)
		p = p[:min(len(p), 4096)]
	} else {
		p = p[:min(int64(len(p)), r.fast-r.served)]
	}
	n := 0
	if len(r.header) > 0 {
		n = copy(p, r.header)
		r.header = r.header[n:]
	} else {
		if r.remaining == 0 {
			return 0, io.EOF
		}
		n = int(min(int64(len(p)), r.remaining))
		clear(p[:n])
		r.remaining -= int64(n)
	}
	r.served += int64(n)
	if r.served == r.fast {
		close(r.started)
	}
	return n, nil
}

// startSlowApply starts ApplyDiff(ctx, id) from a trickleReader of a 64 MiB file and returns once
// the plugin side has been fed its first 256 KiB. The source fails when the test ends.
func startSlowApply(t *testing.T, h *harness, ctx context.Context, id string) <-chan applyResult {
	t.Helper()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	src := newTrickleReader(64<<20, 256<<10, stop)
	done := make(chan applyResult, 1)
	go func() {
		n, err := h.d.ApplyDiff(ctx, id, "", src)
		done <- applyResult{n, err}
	}()
	select {
	case <-src.started:
	case r := <-done:
		t.Fatalf("ApplyDiff of a 64 MiB stream returned before reading 256 KiB: %d, %v", r.n, r.err)
	case <-time.After(watchdog):
		t.Fatal("ApplyDiff did not read the first 256 KiB of its stream")
	}
	return done
}

// await waits for an ApplyDiff started by startSlowApply.
func await(t *testing.T, done <-chan applyResult, what string) applyResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(watchdog):
		t.Fatalf("%s: ApplyDiff did not return", what)
		return applyResult{}
	}
}

// testContextCancel: cancelling the context of an ApplyDiff in flight, or of a Diff being read,
// makes it fail with context.Canceled; a call with a cancelled context changes nothing; the
// driver keeps working.
func testContextCancel(t *testing.T, h *harness) {
	h.create(t, "cancel-apply", "")
	ctx, cancel := context.WithCancel(t.Context())
	done := startSlowApply(t, h, ctx, "cancel-apply")
	cancel()
	r := await(t, done, "cancelled ApplyDiff")
	if r.err == nil || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("ApplyDiff whose context was cancelled midway returned %d, %v; want context.Canceled", r.n, r.err)
	}

	err := h.d.Create(ctx, "never", "", pluginapi.CreateOpts{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context: %v, want context.Canceled", err)
	}
	if ok, err := h.d.Exists(t.Context(), "never"); err != nil || ok {
		t.Fatalf("Exists(never) = %v, %v after Create with a cancelled context", ok, err)
	}

	h.create(t, "cancel-diff", "")
	h.withLayer(t, "cancel-diff", func(root string) error { return sparseFile(filepath.Join(root, "sparse"), 1<<30) })
	dctx, dcancel := context.WithCancel(t.Context())
	rc, err := h.d.Diff(dctx, "cancel-diff", "")
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
		t.Fatalf("read the first MiB of the diff: %v", err)
	}
	dcancel()
	readErr := readWithin(rc)
	closeErr := rc.Close()
	if readErr == nil {
		t.Fatalf("a Diff stream read to its end although its context was cancelled (close: %v)", closeErr)
	}

	h.create(t, "after-cancel", "")
	if n, err := h.d.ApplyDiff(t.Context(), "after-cancel", "", bytes.NewReader(tarWithFile("f", 1000))); err != nil || n != 1000 {
		t.Fatalf("ApplyDiff after cancelled calls = %d, %v", n, err)
	}
}

// sparseFile makes a file of size bytes that occupies no disk blocks: a Diff stream that is big
// on the wire and costs nothing to store.
func sparseFile(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	return errors.Join(f.Truncate(size), f.Close())
}

// readWithin drains r and returns its error (nil for a clean io.EOF), or a watchdog error.
func readWithin(r io.Reader) error {
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(watchdog):
		return errors.New("watchdog: the stream neither ended nor failed")
	}
}

// killPlugin SIGKILLs the running plugin process and returns its PID.
func killPlugin(t *testing.T, h *harness) int {
	t.Helper()
	if h.proc == nil || !h.proc.Started() {
		t.Fatal("the plugin process is not running")
	}
	pid := h.proc.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %d: %v", pid, err)
	}
	return pid
}

// wantPluginDied checks that err reports the plugin's death (ErrPluginDied, class
// ErrUnavailable) naming the driver.
func wantPluginDied(t *testing.T, h *harness, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error although the plugin was killed", what)
	}
	if !errors.Is(err, errPluginDied) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("%s: error %q does not wrap ErrPluginDied (class unavailable)", what, err)
	}
	if !strings.Contains(err.Error(), h.cfg.Driver) {
		t.Fatalf("%s: error %q does not name the driver %s", what, err, h.cfg.Driver)
	}
}

// wantRelaunched checks that the next call works, served by a new process whose Init was
// replayed (the layers are still there).
func wantRelaunched(t *testing.T, h *harness, oldPid int, layer string) {
	t.Helper()
	ok, err := h.d.Exists(t.Context(), layer)
	if err != nil || !ok {
		t.Fatalf("Exists(%s) after the plugin was killed = %v, %v; want true", layer, ok, err)
	}
	if pid := h.proc.Pid(); pid == oldPid || pid <= 0 {
		t.Fatalf("plugin PID after relaunch is %d, killed one was %d", pid, oldPid)
	}
	h.create(t, layer+"-after", "")
}

// testKilledMidApply: SIGKILL of the plugin while an ApplyDiff is in flight fails that call with
// ErrPluginDied naming the driver; the next call relaunches the plugin and works.
func testKilledMidApply(t *testing.T, h *harness) {
	h.create(t, "kill-apply", "")
	done := startSlowApply(t, h, t.Context(), "kill-apply")
	pid := killPlugin(t, h)
	r := await(t, done, "ApplyDiff of a killed plugin")
	wantPluginDied(t, h, "ApplyDiff in flight when the plugin was killed", r.err)
	wantRelaunched(t, h, pid, "kill-apply")
}

// testKilledMidDiff: SIGKILL of the plugin while a Diff stream is being read makes the stream
// fail (never a short, clean tar) with ErrPluginDied naming the driver; the next call relaunches
// the plugin and works.
func testKilledMidDiff(t *testing.T, h *harness) {
	h.create(t, "kill-diff", "")
	h.withLayer(t, "kill-diff", func(root string) error { return sparseFile(filepath.Join(root, "sparse"), 1<<30) })
	rc, err := h.d.Diff(t.Context(), "kill-diff", "")
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	if _, err := io.CopyN(io.Discard, rc, 1<<20); err != nil {
		t.Fatalf("read the first MiB of the diff: %v", err)
	}
	pid := killPlugin(t, h)
	readErr := readWithin(rc)
	closeErr := rc.Close()
	if readErr == nil {
		t.Fatalf("the Diff stream of a killed plugin ended cleanly (close: %v)", closeErr)
	}
	wantPluginDied(t, h, "reading the Diff stream of a killed plugin", errors.Join(readErr, closeErr))
	wantRelaunched(t, h, pid, "kill-diff")
}
