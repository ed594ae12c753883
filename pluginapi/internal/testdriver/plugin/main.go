// Command plugin is the test driver as a plugin executable (built by pluginapi's tests as
// containers-storage-driver-test). Extra knobs, read at start:
//
//	TESTDRIVER_EXIT_AT_START=N   exit with status N before serving
//	TESTDRIVER_PROTOCOL=N        serve go-plugin protocol version N instead of APIVersion
package main

import (
	"os"
	"strconv"

	"github.com/hashicorp/go-plugin"

	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/internal/testdriver"
)

func main() {
	if v := os.Getenv("TESTDRIVER_EXIT_AT_START"); v != "" {
		n, _ := strconv.Atoi(v)
		os.Exit(n)
	}
	if v := os.Getenv("TESTDRIVER_PROTOCOL"); v != "" {
		n, _ := strconv.Atoi(v)
		hs := pluginapi.Handshake
		hs.ProtocolVersion = uint(n)
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: hs,
			Plugins:         plugin.PluginSet{},
			GRPCServer:      plugin.DefaultGRPCServer,
		})
		return
	}
	pluginapi.Serve(testdriver.FromEnv())
}
