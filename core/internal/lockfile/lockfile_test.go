package lockfile

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
)

// procLock is one line of /proc/locks about a file.
type procLock struct {
	kind    string // POSIX, FLOCK, OFDLCK
	access  string // READ, WRITE
	pid     int
	waiting bool // a blocked request ("->")
}

// locksOn lists the kernel's record of locks on path's inode.
func locksOn(t *testing.T, path string) []procLock {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Skipf("cannot read /proc/locks to observe kernel locks: %v", err)
	}
	suffix := ":" + strconv.FormatUint(st.Ino, 10)
	var out []procLock
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		waiting := len(f) > 1 && f[1] == "->"
		if waiting {
			f = append(f[:1], f[2:]...)
		}
		if len(f) < 6 || !strings.HasSuffix(f[5], suffix) {
			continue
		}
		pid, _ := strconv.Atoi(f[4])
		out = append(out, procLock{kind: f[1], access: f[3], pid: pid, waiting: waiting})
	}
	return out
}

func hasLock(locks []procLock, want procLock) bool {
	for _, l := range locks {
		if l == want {
			return true
		}
	}
	return false
}

// waitForWaiter polls /proc/locks until pid is queued for a lock on path: the proof that it is
// blocked in F_SETLKW. The deadline only turns a hang into a failure.
func waitForWaiter(t *testing.T, path string, pid int, access string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !hasLock(locksOn(t, path), procLock{kind: "POSIX", access: access, pid: pid, waiting: true}) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d never queued for a %s lock on %s: %v", pid, access, path, locksOn(t, path))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openT(t *testing.T, path string, readOnly bool) *LockFile {
	t.Helper()
	l, err := Open(path, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestOpenCreatesFileAndDirectories(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "layers.lock")
	openT(t, path, false)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 || st.Size() != 0 {
		t.Errorf("lock file mode %v size %d, want 0644 and empty", st.Mode().Perm(), st.Size())
	}
	dst, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("lock directory mode %v, want 0700", dst.Mode().Perm())
	}
}

func TestTokenLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layers.lock")
	l := openT(t, path, false)
	before := time.Now().UnixNano()
	l.Lock()
	var tokens [][]byte
	for range 3 {
		if err := l.RecordWrite(); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, l.seen)
	}
	l.Unlock()
	after := time.Now().UnixNano()

	// Read the file only now: closing a descriptor while holding the lock would release it.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, tokens[2]) {
		t.Fatalf("file holds %x, want the last token %x", data, tokens[2])
	}
	for i, tok := range tokens {
		if len(tok) != 64 {
			t.Fatalf("token %d is %d bytes, want 64", i, len(tok))
		}
		ns := int64(binary.LittleEndian.Uint64(tok[0:8]))
		if ns < before || ns > after {
			t.Errorf("token %d time %d outside [%d, %d]", i, ns, before, after)
		}
		if pid := binary.LittleEndian.Uint32(tok[16:20]); int(pid) != os.Getpid() {
			t.Errorf("token %d pid %d, want %d", i, pid, os.Getpid())
		}
		if i > 0 {
			prev, cur := binary.LittleEndian.Uint64(tokens[i-1][8:16]), binary.LittleEndian.Uint64(tok[8:16])
			if cur != prev+1 {
				t.Errorf("token %d counter %d after %d, want +1", i, cur, prev)
			}
			if bytes.Equal(tok[20:], tokens[i-1][20:]) {
				t.Errorf("token %d repeats the random part of token %d", i, i-1)
			}
			if bytes.Equal(tok, tokens[i-1]) {
				t.Errorf("token %d equals token %d: each RecordWrite must change the file", i, i-1)
			}
		}
	}
}

func TestWriterExcludesOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "images.lock")
	l := openT(t, path, false)
	l.Lock()
	if !hasLock(locksOn(t, path), procLock{kind: "POSIX", access: "WRITE", pid: os.Getpid()}) {
		t.Fatalf("no POSIX write lock of ours in /proc/locks: %v", locksOn(t, path))
	}
	if got := tryFromOtherProcess(t, path); got != "inuse" {
		t.Fatalf("other process TryLock while we write: %q, want inuse", got)
	}
	if err := l.RecordWrite(); err != nil {
		t.Fatal(err)
	}

	h := startHelper(t, path, false, "lock", "write", "unlock")
	waitForWaiter(t, path, h.cmd.Process.Pid, "WRITE")
	l.Unlock()
	h.expect("lock")
	childToken := strings.TrimPrefix(h.next(), "write ")
	h.expect("unlock")
	h.wait()

	l.RLock()
	defer l.Unlock()
	if m, err := l.Modified(); err != nil || !m {
		t.Fatalf("Modified after the other process wrote = %v, %v; want true", m, err)
	}
	if got := hex.EncodeToString(l.seen); got != childToken {
		t.Errorf("token seen %s, want the other process's %s", got, childToken)
	}
	if m, err := l.Modified(); err != nil || m {
		t.Errorf("second Modified = %v, %v; want false", m, err)
	}
}

func TestWaitsForOtherProcessWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers.lock")
	l := openT(t, path, false)
	h := startHelper(t, path, false, "lock", "wait", "write", "unlock")
	h.expect("lock")
	if err := l.TryLock(); !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("TryLock while another process writes: %v, want ErrInUse", err)
	}

	got := make(chan bool)
	go func() {
		l.RLock()
		m, _ := l.Modified()
		l.Unlock()
		got <- m
	}()
	waitForWaiter(t, path, os.Getpid(), "READ")
	h.proceed()
	h.expect("wait")
	h.next() // write
	h.expect("unlock")
	h.wait()
	if !<-got {
		t.Error("reader that waited for the writer: Modified false, want true")
	}
}

func TestReadersShareAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layers.lock")
	l := openT(t, path, false)
	l.RLock()
	h := startHelper(t, path, false, "rlock", "unlock")
	h.expect("rlock") // does not block on our read lock
	h.expect("unlock")
	h.wait()
	if got := tryFromOtherProcess(t, path); got != "inuse" {
		t.Fatalf("other process TryLock while we read: %q, want inuse", got)
	}
	l.Unlock()
	if got := tryFromOtherProcess(t, path); got != "ok" {
		t.Fatalf("other process TryLock after we unlocked: %q, want ok", got)
	}
}

func TestCountedReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layers.lock")
	a, b := openT(t, path, false), openT(t, path, false)
	var wg sync.WaitGroup
	for _, l := range []*LockFile{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); l.RLock() }()
	}
	wg.Wait()
	a.Unlock()
	if got := tryFromOtherProcess(t, path); got != "inuse" {
		t.Fatalf("other process TryLock with one reader left: %q, want inuse", got)
	}
	if locks := locksOn(t, path); !hasLock(locks, procLock{kind: "POSIX", access: "READ", pid: os.Getpid()}) {
		t.Fatalf("read lock gone with one reader left: %v", locks)
	}
	b.Unlock()
	if got := tryFromOtherProcess(t, path); got != "ok" {
		t.Fatalf("other process TryLock after the last reader: %q, want ok", got)
	}
}

func TestHandlesInOneProcessShareTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "storage.lock")
	l1 := openT(t, path, false)
	l2, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	l1.Lock()
	if err := l2.TryLock(); !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("TryLock through a second handle while the first writes: %v, want ErrInUse", err)
	}
	// Closing (or opening) another handle must not close a descriptor: that would drop our lock.
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	l3 := openT(t, path, false)
	if got := tryFromOtherProcess(t, path); got != "inuse" {
		t.Fatalf("other process TryLock after another handle was opened and closed: %q, want inuse", got)
	}
	if err := l1.RecordWrite(); err != nil {
		t.Fatal(err)
	}
	l1.Unlock()

	// Each handle remembers its own last token.
	l3.RLock()
	if m, _ := l3.Modified(); !m {
		t.Error("fresh handle: Modified false, want true")
	}
	l3.Unlock()
	l1.RLock()
	if m, _ := l1.Modified(); m {
		t.Error("handle that wrote last: Modified true, want false")
	}
	l1.Unlock()
}

func TestModifiedSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mountpoints.lock")
	l := openT(t, path, false)
	step := func(name string, lock func(), want bool, write bool) {
		t.Helper()
		lock()
		defer l.Unlock()
		m, err := l.Modified()
		if err != nil {
			t.Fatal(err)
		}
		if m != want {
			t.Errorf("%s: Modified = %v, want %v", name, m, want)
		}
		if write {
			if err := l.RecordWrite(); err != nil {
				t.Fatal(err)
			}
		}
	}
	step("fresh handle on an empty file", l.RLock, true, false)
	step("nothing written since", l.RLock, false, false)
	step("before our own write", l.Lock, false, true)
	step("after our own write", l.RLock, false, false)

	h := startHelper(t, path, false, "rlock", "modified", "unlock", "lock", "write", "unlock")
	h.expect("rlock")
	h.expect("modified true") // a fresh handle in another process
	h.expect("unlock")
	h.expect("lock")
	h.next()
	h.expect("unlock")
	h.wait()
	step("after the other process wrote", l.RLock, true, false)
	step("read again", l.RLock, false, false)
}

func TestReadOnlyLockFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.lock")
	if _, err := Open(missing, true); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("read-only Open of a missing file: %v, want ErrNotFound naming it", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("read-only Open created %s", missing)
	}

	path := filepath.Join(dir, "layers.lock")
	w := openT(t, path, false)
	w.Lock()
	if err := w.RecordWrite(); err != nil {
		t.Fatal(err)
	}
	w.Unlock()

	r := openT(t, path, true)
	if err := r.TryLock(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("TryLock on a read-only lock file: %v, want ErrInvalidArgument", err)
	}
	mustPanic(t, "Lock on a read-only lock file", r.Lock)
	r.RLock()
	if m, err := r.Modified(); err != nil || !m {
		t.Errorf("read-only Modified = %v, %v; want true", m, err)
	}
	mustPanic(t, "RecordWrite under a shared lock", func() { _ = r.RecordWrite() })
	if got := tryFromOtherProcess(t, path); got != "inuse" {
		t.Errorf("other process TryLock while a read-only handle reads: %q, want inuse", got)
	}
	h := startHelper(t, path, true, "rlock", "modified", "unlock")
	h.expect("rlock")
	h.expect("modified true")
	h.expect("unlock")
	h.wait()
	r.Unlock()
}

// TestReadOnlyLockFileOnReadOnlyMount: a read-only store sits on a read-only file system, where
// the lock file cannot be opened for writing.
func TestReadOnlyLockFileOnReadOnlyMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a directory read-only")
	}
	src, mnt := t.TempDir(), t.TempDir()
	path := filepath.Join(src, "images.lock")
	w, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Lock()
	if err := w.RecordWrite(); err != nil {
		t.Fatal(err)
	}
	w.Unlock()
	w.Close()
	if err := unix.Mount(src, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount not available: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	roPath := filepath.Join(mnt, "images.lock")
	if _, err := Open(roPath, false); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("read-write Open on a read-only mount: %v, want EROFS", err)
	}
	r := openT(t, roPath, true)
	r.RLock()
	if !hasLock(locksOn(t, roPath), procLock{kind: "POSIX", access: "READ", pid: os.Getpid()}) {
		t.Errorf("no POSIX read lock of ours: %v", locksOn(t, roPath))
	}
	if m, err := r.Modified(); err != nil || !m {
		t.Errorf("Modified = %v, %v; want true", m, err)
	}
	r.Unlock()
}

func TestMisuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layers.lock")
	l, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	mustPanic(t, "Unlock without a lock", l.Unlock)
	mustPanic(t, "Modified without a lock", func() { _, _ = l.Modified() })
	mustPanic(t, "RecordWrite without a lock", func() { _ = l.RecordWrite() })
	l.Lock()
	if err := l.Close(); !errors.Is(err, errdefs.ErrInUse) {
		t.Errorf("Close while holding the lock: %v, want ErrInUse", err)
	}
	l.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	mustPanic(t, "Lock after Close", l.Lock)
}

// TestLockRecreatesRemovedDirectory: a run root removed between two uses (a cleanup script's
// rm -rf) does not make the next lock fail, as in the established tool.
func TestLockRecreatesRemovedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "overlay-layers")
	path := filepath.Join(dir, "mountpoints.lock")
	l := openT(t, path, false)
	if err := os.RemoveAll(filepath.Dir(dir)); err != nil {
		t.Fatal(err)
	}
	l.Lock()
	if err := l.RecordWrite(); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if st, err := os.Stat(path); err != nil || st.Size() != TokenSize {
		t.Fatalf("lock file after recreation: %v, %v", st, err)
	}
}
