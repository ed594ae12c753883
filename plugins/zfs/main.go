// Command containers-storage-driver-zfs is the zfs graph driver plugin (see package zfsdriver).
package main

import (
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/zfs/zfsdriver"
)

func main() {
	pluginapi.Serve(zfsdriver.New())
}
