package main

import (
	"os"

	"testing"

	"github.com/pluggable-storage/storage/conformance"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/overlay/overlaydriver"
)

// The established overlay suite: the graphtest cases with DeepLayerRead(128) and DiffApply(10),
// through the real plugin executable.
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Config{
		Driver:         overlaydriver.Name,
		Executable:     conformance.BuildDriver(t, overlaydriver.Name),
		DeepLayerRead:  128,
		DiffApplyFiles: 10,
	})
}

// The same suite with the driver served in-process behind real gRPC.
func TestConformanceInProcess(t *testing.T) {
	conformance.Run(t, conformance.Config{
		Driver:         overlaydriver.Name,
		New:            func() pluginapi.Driver { return overlaydriver.New() },
		DeepLayerRead:  128,
		DiffApplyFiles: 10,
	})
}

// The suite with fuse-overlayfs as the mount program, in-process.
func TestConformanceFuseOverlayfs(t *testing.T) {
	const prog = "/usr/bin/fuse-overlayfs"
	if _, err := os.Stat(prog); err != nil {
		t.Skipf("fuse-overlayfs not installed: %v", err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	conformance.Run(t, conformance.Config{
		Driver:         overlaydriver.Name,
		New:            func() pluginapi.Driver { return overlaydriver.New() },
		Options:        []string{"overlay.mount_program=" + prog},
		DeepLayerRead:  128,
		DiffApplyFiles: 10,
	})
}
