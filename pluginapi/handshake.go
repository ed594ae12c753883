package pluginapi

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/pluggable-storage/storage/pluginapi/proto"
)

// Handshake is what host and plugin must agree on before anything else. ProtocolVersion is
// APIVersion, so a host and a plugin built from different contract versions fail with go-plugin's
// "incompatible API version" error naming both versions. The magic cookie only tells a plugin
// started by hand that it is not meant to be run that way.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  APIVersion,
	MagicCookieKey:   "CONTAINERS_STORAGE_DRIVER_PLUGIN",
	MagicCookieValue: "8d1f3b0c6a2e4f57b9c1d0e3a5f7c2b4e6d8a0c1f3e5b7d9",
}

// pluginName is the one entry of the plugin map.
const pluginName = "driver"

// Environment variables the host sets for the plugin process.
const (
	// streamFDEnv names the descriptor number of the plugin's end of the stream socket.
	streamFDEnv = "CSTORAGE_STREAM_FD"
	// logLevelEnv carries the host logger's level, so the plugin does not format lines the host
	// would drop.
	logLevelEnv = "CSTORAGE_PLUGIN_LOG_LEVEL"
)

// maxMessageSize bounds one gRPC message either way (a ListLayers of a very large store).
const maxMessageSize = 64 << 20

// driverPlugin is the go-plugin glue: on the plugin side it registers the driver service, on the
// host side it hands back the raw stub (the Client wraps it with the stream socket).
type driverPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Driver
	fds  *fdReceiver
	log  hclog.Logger
}

func (p *driverPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterDriverServer(s, &driverServer{d: p.impl, fds: p.fds, log: p.log})
	return nil
}

func (p *driverPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return proto.NewDriverClient(c), nil
}

// serverOptions are the options of every gRPC server that serves a Driver, in a plugin process or
// in the in-process harness.
func serverOptions(log hclog.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(driverInterceptor(log)),
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.MaxSendMsgSize(maxMessageSize),
	}
}

// dialOptions are the matching client options.
func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)),
	}
}
