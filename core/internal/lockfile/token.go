package lockfile

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// TokenSize is the size of the last-writer token at the start of a lock file.
const TokenSize = 64

// tokenCounter is the per-process counter in every token this process writes.
var tokenCounter atomic.Uint64

// newToken returns a last-writer token in the established layout: bytes 0-7 the time in
// nanoseconds since the epoch, 8-15 a per-process counter, 16-19 the PID (all little endian),
// 20-63 random. Time and PID identify a writer across reboots, the counter separates writes in
// one process, the random part separates processes in different PID namespaces.
func newToken() []byte {
	t := make([]byte, TokenSize)
	binary.LittleEndian.PutUint64(t[0:8], uint64(time.Now().UnixNano()))
	binary.LittleEndian.PutUint64(t[8:16], tokenCounter.Add(1))
	binary.LittleEndian.PutUint32(t[16:20], uint32(os.Getpid()))
	if _, err := io.ReadFull(rand.Reader, t[20:]); err != nil {
		panic(fmt.Sprintf("lock file token: read random bytes: %v", err)) // crypto/rand does not fail on Linux
	}
	return t
}

// RecordWrite records that the caller changed what the lock protects: it writes a new token
// (different on every call, in every process) over the first 64 bytes of the file with pwrite.
// The token is not fsynced: after a crash every reader reloads anyway, being a new process.
// The caller must hold the exclusive lock through this handle (Lock or TryLock); calling it
// otherwise panics. Afterwards Modified through this handle reports false until another writer
// records a write.
func (l *LockFile) RecordWrite() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.held == 0 || !s.write {
		panic(fmt.Sprintf("lock file %s: RecordWrite without the exclusive lock", l.path))
	}
	tok := newToken()
	n, err := unix.Pwrite(s.fd, tok, 0)
	if err != nil {
		return fmt.Errorf("record write on lock file %s: %w", l.path, err)
	}
	if n != len(tok) {
		return fmt.Errorf("record write on lock file %s: short write (%d of %d bytes): %w", l.path, n, len(tok), unix.ENOSPC)
	}
	l.seen = tok
	l.fresh = false
	return nil
}

// Modified reports whether the token in the file differs from the one this handle last saw
// (through RecordWrite or Modified), and remembers the current one. A handle that has seen no
// token yet reports true, so a fresh handle always loads. A file that was never written (empty)
// has the empty token. The caller must hold the lock, shared or exclusive, through this handle;
// calling it otherwise panics. On error the remembered token is unchanged and the caller should
// reload: true is returned with the error.
func (l *LockFile) Modified() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.held == 0 {
		panic(fmt.Sprintf("lock file %s: Modified without holding the lock", l.path))
	}
	cur := make([]byte, TokenSize)
	n, err := unix.Pread(s.fd, cur, 0)
	if err != nil {
		return true, fmt.Errorf("read token of lock file %s: %w", l.path, err)
	}
	cur = cur[:n]
	modified := l.fresh || !bytes.Equal(cur, l.seen)
	l.seen = cur
	l.fresh = false
	return modified, nil
}
