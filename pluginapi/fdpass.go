package pluginapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
)

// The stream socket is a SOCK_SEQPACKET Unix socket pair made by the host at launch; the plugin
// gets its end as a descriptor named by CSTORAGE_STREAM_FD. It carries one kind of message, host
// to plugin: an 8-byte little-endian stream ID with exactly one descriptor attached (SCM_RIGHTS),
// the plugin's end of a pipe. The host sends the message before it makes the gRPC call that names
// the ID, and closes its own copy of that pipe end right after sending.
//
// Nothing else is written on the socket, so the plugin reading EOF means every copy of the host
// end is closed: the host is gone (or closed the Client), and the plugin exits.

// unclaimedTTL bounds how long a received pipe end waits for its call. A call that never arrives
// (the host gave up between sending and calling) must not pin the descriptor forever.
const unclaimedTTL = 5 * time.Minute

// newStreamSocketPair returns the host end as a connection and the plugin end as a file. Both are
// close-on-exec: only the plugin, through ExtraFiles, inherits its end.
func newStreamSocketPair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create stream socket pair: %w", err)
	}
	hostFile := os.NewFile(uintptr(fds[0]), "stream-socket-host")
	pluginFile := os.NewFile(uintptr(fds[1]), "stream-socket-plugin")
	conn, err := fileUnixConn(hostFile)
	if err != nil {
		pluginFile.Close()
		return nil, nil, err
	}
	return conn, pluginFile, nil
}

// fileUnixConn turns f into a *net.UnixConn (which owns a close-on-exec duplicate) and closes f.
func fileUnixConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("stream socket %s: %w", f.Name(), err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("stream socket %s is not a unix socket: %w", f.Name(), errdefs.ErrInvalidArgument)
	}
	return uc, nil
}

// pipeSize is the pipe buffer asked of the kernel (F_SETPIPE_SZ, best-effort): several frames,
// so that the writer frames and hashes the next frame while the reader drains this one. 1 MiB is
// the default /proc/sys/fs/pipe-max-size for unprivileged processes.
const pipeSize = 1 << 20

// newStreamPipe makes a pipe for one stream, with a buffer of pipeSize where the kernel allows.
func newStreamPipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("create stream pipe: %w", err)
	}
	if rc, err := w.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
		})
	}
	return r, w, nil
}

// newStreamID returns a random ID; collisions among the few streams in flight are negligible.
func newStreamID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

// fdSender is the host's end of the stream socket. It is safe for concurrent use: each message is
// one datagram.
type fdSender struct {
	conn *net.UnixConn
}

// send passes f to the plugin under id. The caller still owns (and must close) f.
func (s *fdSender) send(id uint64, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], id)
	var werr error
	if err := rc.Control(func(fd uintptr) {
		_, _, werr = s.conn.WriteMsgUnix(b[:], unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return err
	}
	return werr
}

func (s *fdSender) Close() error { return s.conn.Close() }

// fdReceiver is the plugin's end of the stream socket: one goroutine (run) receives pipe ends into
// a map, and handlers take them by ID.
type fdReceiver struct {
	conn *net.UnixConn

	mu      sync.Mutex
	files   map[uint64]received
	arrived chan struct{} // closed and replaced on every arrival and when run ends
	done    bool          // run has ended; no more arrivals
}

type received struct {
	f  *os.File
	at time.Time
}

func newFDReceiver(conn *net.UnixConn) *fdReceiver {
	return &fdReceiver{conn: conn, files: map[uint64]received{}, arrived: make(chan struct{})}
}

// fdReceiverFromEnv adopts the descriptor named by CSTORAGE_STREAM_FD. The original descriptor is
// closed; the receiver's copy is close-on-exec, so the driver's own children do not inherit it.
func fdReceiverFromEnv() (*fdReceiver, error) {
	v := os.Getenv(streamFDEnv)
	if v == "" {
		return nil, fmt.Errorf("%s is not set: the plugin was not started by a pluginapi host: %w", streamFDEnv, errdefs.ErrInvalidArgument)
	}
	var fd int
	if _, err := fmt.Sscanf(v, "%d", &fd); err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not a descriptor number: %w", streamFDEnv, v, errdefs.ErrInvalidArgument)
	}
	conn, err := fileUnixConn(os.NewFile(uintptr(fd), "stream-socket"))
	if err != nil {
		return nil, err
	}
	return newFDReceiver(conn), nil
}

// run receives until the socket reports EOF or fails, then calls hostGone (if EOF and non-nil).
// After run returns, take fails for IDs not already received.
func (r *fdReceiver) run(hostGone func()) {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var eof bool
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUnix(buf, oob)
		if err != nil || (n == 0 && oobn == 0) {
			eof = err == nil || errors.Is(err, io.EOF)
			break
		}
		files := parseRights(oob[:oobn])
		if n != 8 || len(files) != 1 {
			for _, f := range files {
				f.Close()
			}
			continue
		}
		r.put(binary.LittleEndian.Uint64(buf[:8]), files[0])
	}
	r.mu.Lock()
	r.done = true
	close(r.arrived)
	r.arrived = make(chan struct{})
	r.mu.Unlock()
	if eof && hostGone != nil {
		hostGone()
	}
}

func parseRights(oob []byte) []*os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "stream-pipe"))
		}
	}
	return files
}

func (r *fdReceiver) put(id uint64, f *os.File) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.files {
		if now.Sub(v.at) > unclaimedTTL {
			v.f.Close()
			delete(r.files, k)
		}
	}
	if old, ok := r.files[id]; ok {
		old.f.Close()
	}
	r.files[id] = received{f: f, at: now}
	close(r.arrived)
	r.arrived = make(chan struct{})
}

// take returns the pipe end sent under id, waiting for it until ctx is done. The caller owns it.
func (r *fdReceiver) take(ctx context.Context, id uint64) (*os.File, error) {
	for {
		r.mu.Lock()
		if v, ok := r.files[id]; ok {
			delete(r.files, id)
			r.mu.Unlock()
			return v.f, nil
		}
		if r.done {
			r.mu.Unlock()
			return nil, fmt.Errorf("stream %d: stream socket closed before the stream arrived: %w", id, errdefs.ErrUnavailable)
		}
		arrived := r.arrived
		r.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return nil, fmt.Errorf("stream %d: waiting for the stream: %w", id, ctx.Err())
		}
	}
}

// Close stops run and closes every unclaimed pipe end.
func (r *fdReceiver) Close() error {
	err := r.conn.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.files {
		v.f.Close()
		delete(r.files, k)
	}
	return err
}
