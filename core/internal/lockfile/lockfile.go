// Package lockfile implements the store's lock files, interoperable with the established
// containers/storage (pkg/lockfile) and so with podman and buildah working on the same store.
//
// A lock file is locked with POSIX fcntl whole-file record locks (F_SETLKW/F_SETLK with F_RDLCK or
// F_WRLCK), never flock: the two kinds do not exclude each other, so using flock would let our
// tools and the established ones write the same JSON at once. The file's content is a 64-byte
// "last writer" token (see RecordWrite), written with pwrite at offset 0, that holders compare
// with the token they last saw to decide whether to reload what the lock protects.
//
// Invariants:
//   - fcntl locks belong to a process, not to a file descriptor: a process never conflicts with
//     itself, and closing ANY descriptor of the file drops every lock the process holds on it.
//     So this package keeps one shared state per path in the process (every LockFile opened on
//     the same path shares it): an in-process sync.RWMutex gives exclusion between goroutines,
//     and exactly one descriptor, opened when the first holder arrives and closed when the last
//     holder leaves, carries the fcntl lock. Paths are matched after filepath.Abs: two different
//     paths to one file (through a symlink) are not recognised as one lock. Code in a process
//     that holds a lock must not open and close the lock file by other means (os.ReadFile
//     included): that would release the lock.
//   - Readers are counted: any number of goroutines may hold the shared lock at once; the fcntl
//     read lock is taken by the first and released by the last.
//   - Locks are not recursive, not even shared ones: a goroutine that holds the lock (shared or
//     exclusive) must not lock it again through any LockFile on the same path, because a writer
//     queued in between would deadlock both.
//   - A read-only LockFile opens the file O_RDONLY, never creates it, and can only take the
//     shared lock; read-only stores use it, so they can sit on read-only file systems.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
)

// LockFile is one opener's handle on a lock file. Handles on the same path within a process share
// the lock (see the package doc); each handle keeps its own memory of the last token it saw, so
// two stores in one process each notice the other's writes through Modified.
//
// Lifecycle: Open, then any number of lock/unlock cycles (Lock or RLock or a successful TryLock,
// the calls that need the lock, then Unlock), then Close. A handle may be used by several
// goroutines at once, each following the lock contract.
type LockFile struct {
	path     string
	readOnly bool
	shared   *sharedLock

	mu     sync.Mutex // guards the fields below
	held   int        // holds taken through this handle and not yet released
	seen   []byte     // last token seen through RecordWrite or Modified
	fresh  bool       // no token seen yet: the next Modified reports true
	closed bool
}

// sharedLock is the per-process state of one lock file path, shared by its handles.
type sharedLock struct {
	path string
	rw   sync.RWMutex // in-process exclusion, taken before the fcntl lock
	// first serialises the first holder's open and (possibly long) fcntl wait, so that readers
	// arriving meanwhile queue behind it rather than lock a second time; mu is never held while
	// waiting for another process.
	first sync.Mutex

	mu      sync.Mutex // guards the fields below
	refs    int        // open handles
	holders int        // current holders (1 writer, or counted readers)
	write   bool       // the current hold is exclusive
	fd      int        // valid while holders > 0; opened by the first holder
}

var (
	registryMu sync.Mutex
	registry   = map[string]*sharedLock{}
)

// Open returns a handle on the lock file at path. Unless readOnly, the file is created (mode 0644,
// parent directories 0700) if missing. A read-only handle requires the file to exist: a missing
// file is an error wrapping errdefs.ErrNotFound. Open takes no lock.
func Open(path string, readOnly bool) (*LockFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w: %w", path, errdefs.ErrInvalidArgument, err)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	s := registry[abs]
	if s == nil {
		// No handle on this path is open in the process, so nobody holds or is acquiring the
		// lock, and closing a probe descriptor cannot drop a lock: check that the file opens
		// (and create it). With handles open, a probe could race with a holder; the file then
		// exists, or the next lock recreates it.
		fd, err := openFile(abs, readOnly)
		if err != nil {
			return nil, err
		}
		unix.Close(fd)
		s = &sharedLock{path: abs, fd: -1}
		registry[abs] = s
	} else if readOnly {
		if _, err := os.Stat(abs); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open lock file %s: %w: %w", abs, errdefs.ErrNotFound, err)
			}
			return nil, fmt.Errorf("open lock file: %w", err)
		}
	}
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
	return &LockFile{path: abs, readOnly: readOnly, shared: s, fresh: true}, nil
}

// openFile opens the lock file with close-on-exec; read-write opens create it and its directory.
func openFile(path string, readOnly bool) (int, error) {
	flags := unix.O_CLOEXEC
	if readOnly {
		flags |= unix.O_RDONLY
	} else {
		flags |= unix.O_RDWR | unix.O_CREAT
	}
	fd, err := unix.Open(path, flags, 0o644)
	if errors.Is(err, unix.ENOENT) && !readOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return -1, fmt.Errorf("create directory of lock file %s: %w", path, err)
		}
		fd, err = unix.Open(path, flags, 0o644)
	}
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ENOENT):
		return -1, fmt.Errorf("open lock file %s: %w: %w", path, errdefs.ErrNotFound, &os.PathError{Op: "open", Path: path, Err: err})
	default:
		return -1, fmt.Errorf("open lock file: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
}

// Path returns the lock file's absolute path.
func (l *LockFile) Path() string { return l.path }

// ReadOnly reports whether the handle was opened read-only.
func (l *LockFile) ReadOnly() bool { return l.readOnly }

// Lock takes the exclusive lock: first the in-process write mutex, then an fcntl F_WRLCK on the
// whole file, waiting for other processes (F_SETLKW). The caller must not hold the lock already
// (through any handle on this path). Lock panics on a read-only handle, and when the file cannot
// be opened or locked at all (its directory cannot be recreated, the file system has no locks):
// the store cannot proceed safely without the lock.
func (l *LockFile) Lock() {
	if l.readOnly {
		panic(fmt.Sprintf("lock file %s: exclusive lock on a read-only lock file", l.path))
	}
	l.checkOpen()
	l.shared.rw.Lock()
	if err := l.shared.acquire(true, true, false); err != nil {
		l.shared.rw.Unlock()
		panic(err)
	}
	l.addHold()
}

// RLock takes the shared lock: the in-process read mutex, then, for the first reader in the
// process, an fcntl F_RDLCK waiting for writers in other processes. The caller must not hold the
// lock already. It panics, as Lock does, when the file cannot be opened or locked.
func (l *LockFile) RLock() {
	l.checkOpen()
	l.shared.rw.RLock()
	if err := l.shared.acquire(false, !l.readOnly, false); err != nil {
		l.shared.rw.RUnlock()
		panic(err)
	}
	l.addHold()
}

// TryLock takes the exclusive lock without waiting. When a goroutine of this process or another
// process holds the lock (shared or exclusive), it returns an error wrapping errdefs.ErrInUse and
// the caller holds nothing. On a read-only handle it returns an error wrapping
// errdefs.ErrInvalidArgument. On success the caller holds the lock as after Lock.
func (l *LockFile) TryLock() error {
	if l.readOnly {
		return fmt.Errorf("lock %s: read-only lock file: %w", l.path, errdefs.ErrInvalidArgument)
	}
	l.checkOpen()
	if !l.shared.rw.TryLock() {
		return fmt.Errorf("lock %s: held in this process: %w", l.path, errdefs.ErrInUse)
	}
	if err := l.shared.acquire(true, true, true); err != nil {
		l.shared.rw.Unlock()
		return err
	}
	l.addHold()
	return nil
}

// Unlock releases one hold taken through this handle (by Lock, RLock or TryLock). The fcntl lock
// is released when the last holder in the process leaves. Unlocking a handle that holds nothing
// panics: it means the lock discipline is broken and the data it protects is at risk.
func (l *LockFile) Unlock() {
	l.mu.Lock()
	if l.held == 0 {
		l.mu.Unlock()
		panic(fmt.Sprintf("lock file %s: unlock of a lock not held through this handle", l.path))
	}
	l.held--
	l.mu.Unlock()

	write := l.shared.release()
	if write {
		l.shared.rw.Unlock()
	} else {
		l.shared.rw.RUnlock()
	}
}

// Close releases the handle. The caller must hold no lock through it: Close of a handle that
// still holds the lock returns an error wrapping errdefs.ErrInUse and changes nothing. Closing a
// handle twice is a no-op. Close never touches the lock file's descriptor while another handle
// on the same path holds the lock.
func (l *LockFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	if l.held > 0 {
		return fmt.Errorf("close lock file %s: lock still held: %w", l.path, errdefs.ErrInUse)
	}
	l.closed = true
	registryMu.Lock()
	defer registryMu.Unlock()
	s := l.shared
	s.mu.Lock()
	s.refs--
	if s.refs == 0 && registry[s.path] == s {
		delete(registry, s.path)
	}
	s.mu.Unlock()
	return nil
}

func (l *LockFile) checkOpen() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		panic(fmt.Sprintf("lock file %s: used after Close", l.path))
	}
}

func (l *LockFile) addHold() {
	l.mu.Lock()
	l.held++
	l.mu.Unlock()
}

// acquire joins the process's hold, opening the file and taking the fcntl lock for the first
// holder. The caller holds s.rw (exclusively when write is true).
func (s *sharedLock) acquire(write, readWrite, try bool) error {
	s.first.Lock()
	defer s.first.Unlock()
	s.mu.Lock()
	if s.holders > 0 { // a reader joining readers: the process already has the fcntl lock
		s.holders++
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()

	fd, err := openFile(s.path, !readWrite)
	if err != nil {
		return err
	}
	if err := fcntlLock(fd, write, try); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("lock %s: held by another process: %w", s.path, errdefs.ErrInUse)
		}
		return fmt.Errorf("lock %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.fd, s.holders, s.write = fd, 1, write
	s.mu.Unlock()
	return nil
}

// release leaves the process's hold; the last holder closes the descriptor, which drops the fcntl
// lock. It reports whether the hold was exclusive, so the caller releases s.rw the same way.
func (s *sharedLock) release() (write bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	write = s.write
	s.holders--
	if s.holders == 0 {
		// Closing releases the lock; an explicit F_UNLCK first makes that independent of close.
		_ = fcntlUnlock(s.fd)
		unix.Close(s.fd)
		s.fd = -1
		s.write = false
	}
	return write
}

// fcntlLock takes a whole-file POSIX record lock on fd. Blocking calls retry when interrupted and
// after a (possibly spurious, threads share the process) EDEADLK.
func fcntlLock(fd int, write, try bool) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: int16(unix.SEEK_SET), Start: 0, Len: 0}
	if write {
		lk.Type = unix.F_WRLCK
	}
	cmd := unix.F_SETLKW
	if try {
		cmd = unix.F_SETLK
	}
	for {
		err := unix.FcntlFlock(uintptr(fd), cmd, &lk)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EDEADLK) && !try:
			time.Sleep(10 * time.Millisecond)
			continue
		default:
			return err
		}
	}
}

func fcntlUnlock(fd int) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: int16(unix.SEEK_SET), Start: 0, Len: 0}
	return unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk)
}
