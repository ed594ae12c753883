// Command containers-storage-driver-overlay is the overlay graph driver plugin. It serves
// overlaydriver over the pluginapi contract; the store starts it and talks to it over gRPC.
package main

import (
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/overlay/overlaydriver"
)

func main() {
	pluginapi.Serve(overlaydriver.New())
}
