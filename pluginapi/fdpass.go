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
// to plugin: an 8-byte little-endian stream ID with descriptors attached (SCM_RIGHTS): for a tar
// stream, the plugin's end of its control socket and its arena (shmstream.go). The host sends the
// message before it makes the gRPC call that names the ID, and closes its own copies of those
// descriptors right after sending.
//
// Nothing else is written on the socket, so the plugin reading EOF means every copy of the host
// end is closed: the host is gone (or closed the Client), and the plugin exits.

// maxStreamFiles is the most descriptors one message may carry.
const maxStreamFiles = 4

// unclaimedTTL bounds how long a received stream waits for its call. A call that never arrives
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
func (s *fdSender) send(id uint64, f *os.File) error { return s.sendFiles(id, f) }

// sendFiles passes files to the plugin under id, in one message. The caller still owns (and must
// close) them.
func (s *fdSender) sendFiles(id uint64, files ...*os.File) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], id)
	// Each descriptor is used inside its file's Control (not Fd, which would put the shared
	// description in blocking mode), nested so that all are held during the one send.
	fds := make([]int, 0, len(files))
	var werr error
	var withFDs func(i int) error
	withFDs = func(i int) error {
		if i == len(files) {
			_, _, werr = s.conn.WriteMsgUnix(b[:], unix.UnixRights(fds...), nil)
			return nil
		}
		rc, err := files[i].SyscallConn()
		if err != nil {
			return err
		}
		var inner error
		if err := rc.Control(func(fd uintptr) {
			fds = append(fds, int(fd))
			inner = withFDs(i + 1)
		}); err != nil {
			return err
		}
		return inner
	}
	if err := withFDs(0); err != nil {
		return err
	}
	return werr
}

func (s *fdSender) Close() error { return s.conn.Close() }

// fdReceiver is the plugin's end of the stream socket: one goroutine (run) receives stream descriptors into
// a map, and handlers take them by ID.
type fdReceiver struct {
	conn *net.UnixConn

	mu      sync.Mutex
	files   map[uint64]received
	arrived chan struct{} // closed and replaced on every arrival and when run ends
	done    bool          // run has ended; no more arrivals
}

type received struct {
	files []*os.File
	at    time.Time
}

func (v received) close() {
	for _, f := range v.files {
		f.Close()
	}
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
	oob := make([]byte, unix.CmsgSpace(maxStreamFiles*4))
	var eof bool
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUnix(buf, oob)
		if err != nil || (n == 0 && oobn == 0) {
			eof = err == nil || errors.Is(err, io.EOF)
			break
		}
		files := parseRights(oob[:oobn])
		if n != 8 || len(files) == 0 || len(files) > maxStreamFiles {
			for _, f := range files {
				f.Close()
			}
			continue
		}
		r.put(binary.LittleEndian.Uint64(buf[:8]), files)
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
			files = append(files, os.NewFile(uintptr(fd), "stream-file"))
		}
	}
	return files
}

func (r *fdReceiver) put(id uint64, files []*os.File) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.files {
		if now.Sub(v.at) > unclaimedTTL {
			v.close()
			delete(r.files, k)
		}
	}
	if old, ok := r.files[id]; ok {
		old.close()
	}
	r.files[id] = received{files: files, at: now}
	close(r.arrived)
	r.arrived = make(chan struct{})
}

// take returns the one file sent under id, waiting for it until ctx is done. The caller owns it.
func (r *fdReceiver) take(ctx context.Context, id uint64) (*os.File, error) {
	files, err := r.takeFiles(ctx, id, 1)
	if err != nil {
		return nil, err
	}
	return files[0], nil
}

// takeFiles returns the want files sent under id, waiting for them until ctx is done. The caller
// owns them. A message with another number of files is an error (and its files are closed).
func (r *fdReceiver) takeFiles(ctx context.Context, id uint64, want int) ([]*os.File, error) {
	for {
		r.mu.Lock()
		if v, ok := r.files[id]; ok {
			delete(r.files, id)
			r.mu.Unlock()
			if len(v.files) != want {
				v.close()
				return nil, fmt.Errorf("stream %d: %d descriptors arrived, want %d: %w", id, len(v.files), want, errdefs.ErrInvalidArgument)
			}
			return v.files, nil
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

// Close stops run and closes every unclaimed descriptor.
func (r *fdReceiver) Close() error {
	err := r.conn.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.files {
		v.close()
		delete(r.files, k)
	}
	return err
}
