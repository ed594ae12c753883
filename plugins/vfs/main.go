// Command containers-storage-driver-vfs is the vfs graph driver plugin (see package vfsdriver).
package main

import (
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/vfs/vfsdriver"
)

func main() {
	pluginapi.Serve(vfsdriver.New())
}
