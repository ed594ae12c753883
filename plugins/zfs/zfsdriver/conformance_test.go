package zfsdriver_test

import (
	"os"
	"testing"

	"github.com/pluggable-storage/storage/conformance"
)

// TestConformance runs the shared suite, SetQuota included, against the real plugin executable
// on the test pool: layers under a child dataset (zfs.fsname), graph roots on the pool's
// mountpoint.
func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("zfs conformance needs root")
	}
	fsname := testDataset(t, "conformance")
	conformance.Run(t, conformance.Config{
		Driver:     "zfs",
		Executable: conformance.BuildDriver(t, "zfs"),
		Options:    []string{"zfs.fsname=" + fsname},
		GraphRoot:  testRoot,
		Quota:      true,
	})
}
