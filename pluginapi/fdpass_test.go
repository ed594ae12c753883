package pluginapi

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/pluggable-storage/storage/errdefs"
)

func newTestSocket(t *testing.T) (*fdSender, *fdReceiver) {
	t.Helper()
	host, pluginEnd, err := newStreamSocketPair()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := fileUnixConn(pluginEnd)
	if err != nil {
		t.Fatal(err)
	}
	s, r := &fdSender{conn: host}, newFDReceiver(conn)
	t.Cleanup(func() { s.Close(); r.Close() })
	return s, r
}

func TestFDPassing(t *testing.T) {
	s, r := newTestSocket(t)
	gone := make(chan struct{})
	go r.run(func() { close(gone) })

	// Two pipes passed out of order arrive under their IDs, and bytes written to the host's
	// end come out of the received end.
	ids := []uint64{newStreamID(), newStreamID()}
	var writers []io.WriteCloser
	for _, id := range ids {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.send(id, pr); err != nil {
			t.Fatal(err)
		}
		pr.Close()
		writers = append(writers, pw)
	}
	for i := len(ids) - 1; i >= 0; i-- {
		f, err := r.take(context.Background(), ids[i])
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{byte('a' + i)}
		if _, err := writers[i].Write(msg); err != nil {
			t.Fatal(err)
		}
		writers[i].Close()
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(got) != string(msg) {
			t.Fatalf("stream %d carried %q, %v; want %q", i, got, err, msg)
		}
	}

	// A stream that never comes: take gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.take(ctx, 12345); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("take of a stream never sent = %v, want DeadlineExceeded", err)
	}

	// The host end closing is the plugin's signal that the host is gone.
	s.Close()
	select {
	case <-gone:
	case <-time.After(20 * time.Second):
		t.Fatal("closing the host end did not end the receiver")
	}
	if _, err := r.take(context.Background(), 999); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("take after the socket closed = %v, want ErrUnavailable", err)
	}
}
