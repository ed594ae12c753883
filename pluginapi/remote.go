package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi/proto"
)

// grpcDriver is a Driver that forwards every call over one gRPC connection and one stream socket.
// It does not relaunch anything: the Client wraps it with process management, the in-process
// harness uses it bare. It is safe for concurrent use.
type grpcDriver struct {
	name string // driver name, for errors
	rpc  proto.DriverClient
	fds  *fdSender
	// exitStatus, if set, describes how the plugin process ended ("signal: killed"), waiting
	// briefly for it; "" when unknown.
	exitStatus func() string
	// onDied, if set, is called whenever a call finds the connection dead.
	onDied func()
}

var _ Driver = (*grpcDriver)(nil)

func (g *grpcDriver) Info(ctx context.Context) (Info, error) {
	resp, err := g.rpc.Info(ctx, &proto.InfoRequest{})
	if err != nil {
		return Info{}, g.callError(ctx, "info", err)
	}
	return infoFromProto(resp), nil
}

func (g *grpcDriver) Init(ctx context.Context, opts InitOptions) (Info, error) {
	resp, err := g.rpc.Init(ctx, &proto.InitRequest{
		Home:      opts.Home,
		RunHome:   opts.RunHome,
		GraphRoot: opts.GraphRoot,
		RunRoot:   opts.RunRoot,
		Options:   opts.Options,
	})
	if err != nil {
		return Info{}, g.callError(ctx, "init", err)
	}
	return infoFromProto(resp), nil
}

func (g *grpcDriver) Create(ctx context.Context, id, parent string, opts CreateOpts) error {
	_, err := g.rpc.Create(ctx, &proto.CreateRequest{
		Id:         id,
		Parent:     parent,
		ReadWrite:  opts.ReadWrite,
		MountLabel: opts.MountLabel,
		StorageOpt: opts.StorageOpt,
	})
	return g.callError(ctx, "create layer "+id, err)
}

func (g *grpcDriver) Remove(ctx context.Context, id string) error {
	_, err := g.rpc.Remove(ctx, &proto.LayerRequest{Id: id})
	return g.callError(ctx, "remove layer "+id, err)
}

func (g *grpcDriver) Get(ctx context.Context, id string, opts MountOpts) (string, error) {
	resp, err := g.rpc.Get(ctx, &proto.GetRequest{
		Id:         id,
		MountLabel: opts.MountLabel,
		Options:    opts.Options,
		ReadOnly:   opts.ReadOnly,
	})
	if err != nil {
		return "", g.callError(ctx, "mount layer "+id, err)
	}
	return resp.GetPath(), nil
}

func (g *grpcDriver) Put(ctx context.Context, id string) error {
	_, err := g.rpc.Put(ctx, &proto.LayerRequest{Id: id})
	return g.callError(ctx, "unmount layer "+id, err)
}

func (g *grpcDriver) Exists(ctx context.Context, id string) (bool, error) {
	resp, err := g.rpc.Exists(ctx, &proto.LayerRequest{Id: id})
	if err != nil {
		return false, g.callError(ctx, "check layer "+id, err)
	}
	return resp.GetExists(), nil
}

func (g *grpcDriver) ListLayers(ctx context.Context) ([]string, error) {
	resp, err := g.rpc.ListLayers(ctx, &proto.Empty{})
	if err != nil {
		return nil, g.callError(ctx, "list layers", err)
	}
	return resp.GetIds(), nil
}

func (g *grpcDriver) Status(ctx context.Context) ([][2]string, error) {
	resp, err := g.rpc.Status(ctx, &proto.Empty{})
	if err != nil {
		return nil, g.callError(ctx, "status", err)
	}
	out := make([][2]string, 0, len(resp.GetPairs()))
	for _, p := range resp.GetPairs() {
		out = append(out, [2]string{p.GetKey(), p.GetValue()})
	}
	return out, nil
}

func (g *grpcDriver) Metadata(ctx context.Context, id string) (map[string]string, error) {
	resp, err := g.rpc.Metadata(ctx, &proto.LayerRequest{Id: id})
	if err != nil {
		return nil, g.callError(ctx, "metadata of layer "+id, err)
	}
	md := resp.GetMetadata()
	if md == nil {
		md = map[string]string{}
	}
	return md, nil
}

func (g *grpcDriver) Cleanup(ctx context.Context) error {
	_, err := g.rpc.Cleanup(ctx, &proto.Empty{})
	return g.callError(ctx, "cleanup", err)
}

func (g *grpcDriver) Changes(ctx context.Context, id, parent string) ([]archive.Change, error) {
	resp, err := g.rpc.Changes(ctx, &proto.DiffRequest{Id: id, Parent: parent})
	if err != nil {
		return nil, g.callError(ctx, "changes of layer "+id, err)
	}
	return changesFromProto(resp.GetChanges()), nil
}

func (g *grpcDriver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	resp, err := g.rpc.DiffSize(ctx, &proto.DiffRequest{Id: id, Parent: parent})
	if err != nil {
		return 0, g.callError(ctx, "diff size of layer "+id, err)
	}
	return resp.GetSize(), nil
}

// ApplyDiff puts diff into a fresh shared-memory stream (see shmstream.go) whose far end the
// plugin received under a new stream ID, while the gRPC call runs in a goroutine. It returns once
// the call has returned, so the plugin is done with the layer whatever the outcome. Errors, in
// order of precedence: the caller's context; a failure reading diff (the plugin then sees a cut
// stream and fails too); the call's error (the driver's, or ErrPluginDied).
func (g *grpcDriver) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	op := "apply diff to layer " + id
	local, sid, err := g.newStream()
	if err != nil {
		return 0, g.callError(ctx, op, err)
	}

	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := g.rpc.ApplyDiff(callCtx, &proto.StreamRequest{Id: id, Parent: parent, StreamId: sid})
		if err != nil {
			// The plugin may never read the stream (the call failed before the handler took
			// it): unblock the writer.
			local.conn.Close()
		}
		done <- result{resp.GetSize(), err}
	}()
	stop := context.AfterFunc(ctx, func() { local.conn.Close() })

	fw := newShmWriter(local)
	_, copyErr := fw.ReadFrom(diff)
	if copyErr == nil {
		copyErr = fw.Close()
	} else {
		fw.abort()
	}
	stop()
	res := <-done

	if ctx.Err() != nil {
		return 0, fmt.Errorf("driver %q: %s: %w", g.name, op, ctx.Err())
	}
	var werr *streamWriteError
	if copyErr != nil && !errors.As(copyErr, &werr) {
		return 0, fmt.Errorf("driver %q: %s: read diff: %w", g.name, op, copyErr)
	}
	if res.err != nil {
		return 0, g.callError(ctx, op, res.err)
	}
	if copyErr != nil {
		return 0, fmt.Errorf("driver %q: %s: %w", g.name, op, copyErr)
	}
	return res.n, nil
}

// newStream makes a shared-memory stream, passes the plugin its end under a new ID and returns
// this process's end.
func (g *grpcDriver) newStream() (*shmStream, uint64, error) {
	local, peerConn, arena, err := newShmStreamPair()
	if err != nil {
		return nil, 0, err
	}
	sid := newStreamID()
	err = g.fds.sendFiles(sid, peerConn, arena)
	peerConn.Close()
	arena.Close()
	if err != nil {
		local.release()
		return nil, 0, err
	}
	return local, sid, nil
}

// Diff starts the gRPC call in a goroutine and returns once the plugin has either started the
// stream (the first frame arrived) or failed, so an unknown layer is an error from Diff itself as
// in-process. See diffStream for what Read and Close do.
func (g *grpcDriver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	op := "diff of layer " + id
	local, sid, err := g.newStream()
	if err != nil {
		return nil, g.callError(ctx, op, err)
	}

	callCtx, cancel := context.WithCancel(ctx)
	s := &diffStream{
		fr:     newShmReader(local, "diff stream for layer "+id),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		_, err := g.rpc.Diff(callCtx, &proto.StreamRequest{Id: id, Parent: parent, StreamId: sid})
		if err != nil {
			// callCtx, not ctx: a call cancelled by Close is not a dead plugin.
			s.callErr = g.callError(callCtx, op, err)
			// Unblock a reader waiting on a stream the plugin may never have received.
			local.conn.Close()
		}
		close(s.done)
	}()

	primed := make(chan error, 1)
	go func() { primed <- s.fr.prime() }()
	select {
	case err = <-primed:
	case <-s.done:
		if s.callErr != nil {
			<-primed
			s.Close()
			return nil, s.callErr
		}
		err = <-primed
	}
	if err != nil {
		<-s.done
		s.Close()
		if s.callErr != nil {
			return nil, s.callErr
		}
		return nil, fmt.Errorf("driver %q: %s: %w", g.name, op, err)
	}
	return s, nil
}

// diffStream is the host's end of a Diff. Read returns the payload; at the trailer it waits for
// the call and returns io.EOF only if the call succeeded. A stream that breaks returns the
// ErrCorrupt error of the cut joined with the call's error (ErrPluginDied when the plugin died).
// Close cancels the call, closes the stream (the plugin's writes fail) and waits for the call.
type diffStream struct {
	fr     *shmReader
	cancel context.CancelFunc

	done    chan struct{} // closed when the call has returned; callErr is set before
	callErr error

	closeOnce sync.Once
}

func (s *diffStream) Read(p []byte) (int, error) {
	n, err := s.fr.Read(p)
	if err == nil {
		return n, nil
	}
	<-s.done
	if err == io.EOF {
		if s.callErr != nil {
			return n, s.callErr
		}
		return n, io.EOF
	}
	if s.callErr != nil {
		return n, fmt.Errorf("%w; %w", err, s.callErr)
	}
	return n, err
}

func (s *diffStream) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.fr.close()
		<-s.done
	})
	return nil
}
