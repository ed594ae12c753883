package pluginapi

import (
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi/proto"
)

// driverServer serves one Driver over gRPC, in a plugin process (Serve) or in the in-process
// harness. Handlers return plain errors; driverInterceptor turns them into statuses and recovers
// panics. Every handler passes the call's context to the driver, so a call cancelled by the host
// is seen by the driver as ctx.Done().
type driverServer struct {
	proto.UnimplementedDriverServer
	d   Driver
	fds *fdReceiver
	log hclog.Logger
}

var empty = &proto.Empty{}

func infoToProto(in Info) *proto.InfoResponse {
	out := &proto.InfoResponse{Name: in.Name, Version: in.Version, Capabilities: in.Capabilities}
	for _, v := range in.APIVersions {
		out.ApiVersions = append(out.ApiVersions, int32(v))
	}
	return out
}

func infoFromProto(in *proto.InfoResponse) Info {
	out := Info{Name: in.GetName(), Version: in.GetVersion(), Capabilities: in.GetCapabilities()}
	for _, v := range in.GetApiVersions() {
		out.APIVersions = append(out.APIVersions, int(v))
	}
	return out
}

func (s *driverServer) Info(ctx context.Context, _ *proto.InfoRequest) (*proto.InfoResponse, error) {
	info, err := s.d.Info(ctx)
	if err != nil {
		return nil, err
	}
	return infoToProto(info), nil
}

func (s *driverServer) Init(ctx context.Context, req *proto.InitRequest) (*proto.InfoResponse, error) {
	info, err := s.d.Init(ctx, InitOptions{
		Home:      req.GetHome(),
		RunHome:   req.GetRunHome(),
		GraphRoot: req.GetGraphRoot(),
		RunRoot:   req.GetRunRoot(),
		Options:   req.GetOptions(),
	})
	if err != nil {
		return nil, err
	}
	return infoToProto(info), nil
}

func (s *driverServer) Create(ctx context.Context, req *proto.CreateRequest) (*proto.Empty, error) {
	return empty, s.d.Create(ctx, req.GetId(), req.GetParent(), CreateOpts{
		ReadWrite:  req.GetReadWrite(),
		MountLabel: req.GetMountLabel(),
		StorageOpt: req.GetStorageOpt(),
	})
}

func (s *driverServer) Remove(ctx context.Context, req *proto.LayerRequest) (*proto.Empty, error) {
	return empty, s.d.Remove(ctx, req.GetId())
}

func (s *driverServer) Get(ctx context.Context, req *proto.GetRequest) (*proto.GetResponse, error) {
	path, err := s.d.Get(ctx, req.GetId(), MountOpts{
		MountLabel: req.GetMountLabel(),
		Options:    req.GetOptions(),
		ReadOnly:   req.GetReadOnly(),
	})
	if err != nil {
		return nil, err
	}
	return &proto.GetResponse{Path: path}, nil
}

func (s *driverServer) Put(ctx context.Context, req *proto.LayerRequest) (*proto.Empty, error) {
	return empty, s.d.Put(ctx, req.GetId())
}

func (s *driverServer) Exists(ctx context.Context, req *proto.LayerRequest) (*proto.ExistsResponse, error) {
	ok, err := s.d.Exists(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &proto.ExistsResponse{Exists: ok}, nil
}

func (s *driverServer) ListLayers(ctx context.Context, _ *proto.Empty) (*proto.ListLayersResponse, error) {
	ids, err := s.d.ListLayers(ctx)
	if err != nil {
		return nil, err
	}
	return &proto.ListLayersResponse{Ids: ids}, nil
}

func (s *driverServer) Status(ctx context.Context, _ *proto.Empty) (*proto.StatusResponse, error) {
	pairs, err := s.d.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := &proto.StatusResponse{}
	for _, p := range pairs {
		out.Pairs = append(out.Pairs, &proto.KeyValue{Key: p[0], Value: p[1]})
	}
	return out, nil
}

func (s *driverServer) Metadata(ctx context.Context, req *proto.LayerRequest) (*proto.MetadataResponse, error) {
	md, err := s.d.Metadata(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &proto.MetadataResponse{Metadata: md}, nil
}

func (s *driverServer) Cleanup(ctx context.Context, _ *proto.Empty) (*proto.Empty, error) {
	return empty, s.d.Cleanup(ctx)
}

// takeStream opens the shared-memory stream the host sent under id.
func (s *driverServer) takeStream(ctx context.Context, id uint64) (*shmStream, error) {
	files, err := s.fds.takeFiles(ctx, id, 2)
	if err != nil {
		return nil, err
	}
	st, err := openShmStream(files[0], files[1])
	files[1].Close()
	if err != nil {
		files[0].Close()
		return nil, err
	}
	return st, nil
}

// Diff writes the diff to the stream the host sent under req.StreamId. It returns once the
// trailer is sent; an error leaves the stream without a trailer, which the host reads as a cut
// stream and replaces with this call's error.
func (s *driverServer) Diff(ctx context.Context, req *proto.StreamRequest) (*proto.Empty, error) {
	id := req.GetId()
	st, err := s.takeStream(ctx, req.GetStreamId())
	if err != nil {
		return nil, fmt.Errorf("diff of layer %s: %w", id, err)
	}
	fw := newShmWriter(st)
	rc, err := s.d.Diff(ctx, id, req.GetParent())
	if err != nil {
		fw.abort()
		return nil, err
	}
	defer rc.Close()
	// A stream that can write itself (naive's exports straight into fw) saves a copy.
	if wt, ok := rc.(io.WriterTo); ok {
		_, err = wt.WriteTo(fw)
	} else {
		_, err = fw.ReadFrom(rc)
	}
	if err != nil {
		fw.abort()
		return nil, fmt.Errorf("diff of layer %s: %w", id, err)
	}
	if err := fw.Close(); err != nil {
		return nil, fmt.Errorf("diff of layer %s: %w", id, err)
	}
	return empty, nil
}

// ApplyDiff hands the driver the payload of the stream the host sent under req.StreamId. After
// the driver returns, the rest of the stream is drained and its trailer checked: a stream that was
// cut or does not match its trailer fails the call (ErrCorrupt) even if the driver was content.
// When the driver fails, the stream is closed unread and the host's writes fail.
func (s *driverServer) ApplyDiff(ctx context.Context, req *proto.StreamRequest) (*proto.SizeResponse, error) {
	id := req.GetId()
	st, err := s.takeStream(ctx, req.GetStreamId())
	if err != nil {
		return nil, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	fr := newShmReader(st, "diff stream for layer "+id)
	defer fr.close()
	n, err := s.d.ApplyDiff(ctx, id, req.GetParent(), fr)
	if err != nil {
		return nil, err
	}
	if err := fr.drain(); err != nil {
		return nil, fmt.Errorf("apply diff to layer %s: %w", id, err)
	}
	return &proto.SizeResponse{Size: n}, nil
}

func (s *driverServer) Changes(ctx context.Context, req *proto.DiffRequest) (*proto.ChangesResponse, error) {
	changes, err := s.d.Changes(ctx, req.GetId(), req.GetParent())
	if err != nil {
		return nil, err
	}
	out := &proto.ChangesResponse{Changes: make([]*proto.Change, 0, len(changes))}
	for _, c := range changes {
		out.Changes = append(out.Changes, &proto.Change{Path: c.Path, Kind: int32(c.Kind)})
	}
	return out, nil
}

func (s *driverServer) DiffSize(ctx context.Context, req *proto.DiffRequest) (*proto.SizeResponse, error) {
	n, err := s.d.DiffSize(ctx, req.GetId(), req.GetParent())
	if err != nil {
		return nil, err
	}
	return &proto.SizeResponse{Size: n}, nil
}

func changesFromProto(in []*proto.Change) []archive.Change {
	out := make([]archive.Change, 0, len(in))
	for _, c := range in {
		out = append(out, archive.Change{Path: c.GetPath(), Kind: archive.ChangeKind(c.GetKind())})
	}
	return out
}
