// Command containers-storage-driver-btrfs is the btrfs graph driver plugin (see package
// btrfsdriver).
package main

import (
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/btrfs/btrfsdriver"
)

func main() {
	pluginapi.Serve(btrfsdriver.New())
}
