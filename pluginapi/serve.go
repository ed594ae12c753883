package pluginapi

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Serve serves d as a driver plugin and never returns. It is all a driver's main calls:
//
//	func main() { pluginapi.Serve(vfs.New()) }
//
// Logging: Serve installs an hclog logger writing JSON to the process's stderr as hclog's
// default (hclog.Default()); the host re-emits each line under its logger named after the driver.
// A driver logs only through it. Its stdout and os.Stderr are captured by go-plugin and end up
// on the host's stderr, never its stdout.
//
// Lifetime: the process exits when the host closes the Client (go-plugin's shutdown), or as soon
// as the host end of the stream socket is gone (the host died), whatever calls are running.
//
// Profiling: with CSTORAGE_PLUGIN_CPUPROFILE=path (CPUProfileEnv) in its environment, the plugin
// writes a pprof CPU profile of its life to path, finished when it exits.
//
// A handler that panics fails its call with an error saying "panic" (no class) and the process
// keeps serving. Run by hand (without the handshake cookie), Serve prints a short explanation and
// exits 1.
func Serve(d Driver) {
	level := hclog.LevelFromString(os.Getenv(logLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	hclog.SetDefault(logger)
	stopProfile := startCPUProfile(logger)

	var fds *fdReceiver
	if os.Getenv(Handshake.MagicCookieKey) == Handshake.MagicCookieValue {
		var err error
		fds, err = fdReceiverFromEnv()
		if err != nil {
			logger.Error("cannot serve driver", "error", err)
			fmt.Fprintf(os.Stderr, "driver plugin: %v\n", err)
			os.Exit(1)
		}
		go fds.run(func() {
			logger.Info("host is gone (stream socket closed), exiting")
			stopProfile()
			os.Exit(0)
		})
	}
	// Without the cookie, plugin.Serve prints its message and exits 1 before using fds.
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{pluginName: &driverPlugin{impl: d, fds: fds, log: logger}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, serverOptions(logger)...)...)
		},
		Logger: logger,
	})
	stopProfile()
	os.Exit(0)
}
