package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi/proto"
)

// ErrPluginDied is the error of a call that failed because the plugin process exited or its
// connection broke, as opposed to an error the driver returned. It is of class ErrUnavailable.
// Errors wrapping it name the driver and the operation, and the exit status when known:
//
//	driver "vfs": create: driver plugin exited (signal: killed)
var ErrPluginDied = errdefs.Sentinel(errdefs.ErrUnavailable, "driver plugin exited")

// classCodes maps each errdefs class to the gRPC code it travels as. An error with no class
// travels as codes.Unknown.
var classCodes = []struct {
	class error
	code  codes.Code
}{
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrInUse, codes.FailedPrecondition},
	{errdefs.ErrInvalidArgument, codes.InvalidArgument},
	{errdefs.ErrNotSupported, codes.Unimplemented},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrCorrupt, codes.DataLoss},
}

func codeOf(class error) codes.Code {
	for _, cc := range classCodes {
		if cc.class == class {
			return cc.code
		}
	}
	return codes.Unknown
}

func classOfCode(c codes.Code) error {
	for _, cc := range classCodes {
		if cc.code == c {
			return cc.class
		}
	}
	return nil
}

func classByName(name string) error {
	for _, c := range errdefs.Classes {
		if c.Error() == name {
			return c
		}
	}
	return nil
}

// toStatus is the plugin side of the boundary: the status carries the class as its code, the
// error's text as its message, and a DriverError detail marking it as the driver's own error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	class := errdefs.Class(err)
	name := ""
	if class != nil {
		name = class.Error()
	}
	st := status.New(codeOf(class), err.Error())
	if withDetail, derr := st.WithDetails(&proto.DriverError{Class: name}); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// driverInterceptor turns every error of a Driver handler into a status (toStatus) and every
// panic into an error of no class whose text says "panic", so one bad call does not take the
// plugin down. Other services (go-plugin's own) pass through untouched.
func driverInterceptor(log hclog.Logger) grpc.UnaryServerInterceptor {
	prefix := "/" + proto.Driver_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		method, ours := strings.CutPrefix(info.FullMethod, prefix)
		if !ours {
			return handler(ctx, req)
		}
		defer func() {
			if r := recover(); r != nil {
				log.Error("driver panicked", "op", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				resp, err = nil, fmt.Errorf("driver panic in %s: %v", method, r)
			}
			if err != nil {
				resp, err = nil, toStatus(err)
			}
		}()
		return handler(ctx, req)
	}
}

// callError is the host side of the boundary. In order:
//   - the caller's context is done: ctx.Err(), wrapped;
//   - a status with the DriverError marker: the driver's error rebuilt with its class and text,
//     so errors.Is works as in-process;
//   - a transport failure (Unavailable or Canceled without the marker, EOF, a closed
//     connection): ErrPluginDied, wrapped with the driver, the operation and the exit status;
//   - anything else (say Unimplemented from an older plugin): the class of its code, wrapped.
func (g *grpcDriver) callError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("driver %q: %s: %w", g.name, op, ctx.Err())
	}
	st, ok := status.FromError(err)
	if !ok {
		if isTransportError(err) {
			return g.died(op)
		}
		return fmt.Errorf("driver %q: %s: %w", g.name, op, err)
	}
	for _, d := range st.Details() {
		if de, ok := d.(*proto.DriverError); ok {
			class := classByName(de.Class)
			if class == nil && de.Class != "" {
				class = classOfCode(st.Code())
			}
			if class == nil {
				return errors.New(st.Message())
			}
			return errdefs.WithClass(class, st.Message())
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled:
		return g.died(op)
	}
	class := classOfCode(st.Code())
	if class == nil {
		return fmt.Errorf("driver %q: %s: %s", g.name, op, st.Message())
	}
	return fmt.Errorf("driver %q: %s: %w", g.name, op, errdefs.WithClass(class, st.Message()))
}

// died builds the ErrPluginDied error of op and tells the owner (the Client) that this
// connection is finished.
func (g *grpcDriver) died(op string) error {
	if g.onDied != nil {
		g.onDied()
	}
	if g.exitStatus != nil {
		if s := g.exitStatus(); s != "" {
			return fmt.Errorf("driver %q: %s: %w (%s)", g.name, op, ErrPluginDied, s)
		}
	}
	return fmt.Errorf("driver %q: %s: %w", g.name, op, ErrPluginDied)
}

func isTransportError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED)
}
