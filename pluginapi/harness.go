package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pluggable-storage/storage/pluginapi/proto"
)

// InProcessOption configures NewInProcess.
type InProcessOption func(*inProcessConfig)

type inProcessConfig struct {
	logger hclog.Logger
}

// WithInProcessLogger sets the logger of the harness's server (panics are logged there). The
// default discards.
func WithInProcessLogger(l hclog.Logger) InProcessOption {
	return func(c *inProcessConfig) { c.logger = l }
}

// NewInProcess serves d behind a real gRPC server and client in this process: gRPC over a Unix
// socket in a temporary directory, shared-memory streams passed with SCM_RIGHTS over a socket
// pair, the same framing, error mapping and panic recovery as a plugin process. Only the subprocess is
// missing, so tests of drivers and of the store run fast. The returned stop function closes the
// client and the server and removes the temporary directory; calls after it fail with
// ErrPluginDied.
func NewInProcess(d Driver, opts ...InProcessOption) (Driver, func() error, error) {
	cfg := inProcessConfig{logger: hclog.NewNullLogger()}
	for _, o := range opts {
		o(&cfg)
	}
	info, err := d.Info(context.Background())
	if err != nil {
		return nil, nil, fmt.Errorf("in-process driver: info: %w", err)
	}

	dir, err := os.MkdirTemp("", "pluginapi-inprocess-")
	if err != nil {
		return nil, nil, fmt.Errorf("in-process driver %q: %w", info.Name, err)
	}
	var closers []func() error
	stop := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		closers = nil
		return errors.Join(errs...)
	}
	closers = append(closers, func() error { return os.RemoveAll(dir) })
	fail := func(err error) (Driver, func() error, error) {
		return nil, nil, errors.Join(fmt.Errorf("in-process driver %q: %w", info.Name, err), stop())
	}

	hostConn, pluginEnd, err := newStreamSocketPair()
	if err != nil {
		return fail(err)
	}
	sender := &fdSender{conn: hostConn}
	closers = append(closers, sender.Close)
	pluginConn, err := fileUnixConn(pluginEnd)
	if err != nil {
		return fail(err)
	}
	fds := newFDReceiver(pluginConn)
	closers = append(closers, fds.Close)
	go fds.run(nil)

	sock := filepath.Join(dir, "driver.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return fail(err)
	}
	srv := grpc.NewServer(serverOptions(cfg.logger)...)
	proto.RegisterDriverServer(srv, &driverServer{d: d, fds: fds, log: cfg.logger})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	closers = append(closers, func() error {
		srv.Stop()
		<-served
		return nil
	})

	conn, err := grpc.NewClient("unix://"+sock,
		append(dialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, conn.Close)

	return &grpcDriver{name: info.Name, rpc: proto.NewDriverClient(conn), fds: sender}, stop, nil
}
