package btrfsdriver_test

import (
	"testing"

	"github.com/pluggable-storage/storage/conformance"
	"github.com/pluggable-storage/storage/internal/testfs"
	"github.com/pluggable-storage/storage/pluginapi/driverkit/drivertest"
)

// TestConformance runs the shared suite against the real plugin executable, each case with a
// fresh graph root inside one loop-mounted btrfs.
func TestConformance(t *testing.T) {
	mnt := testfs.Btrfs(t)
	conformance.Run(t, conformance.Config{
		Driver:     "btrfs",
		Executable: conformance.BuildDriver(t, "btrfs"),
		GraphRoot:  func(t testing.TB) string { return drivertest.TempDir(t, mnt, "case-") },
		Quota:      true,
	})
}
