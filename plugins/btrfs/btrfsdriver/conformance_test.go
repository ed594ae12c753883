package btrfsdriver_test

import (
	"os"
	"testing"

	"github.com/pluggable-storage/storage/conformance"
	"github.com/pluggable-storage/storage/internal/testfs"
)

// TestConformance runs the shared suite against the real plugin executable, each case with a
// fresh graph root inside one loop-mounted btrfs.
func TestConformance(t *testing.T) {
	mnt := testfs.Btrfs(t)
	conformance.Run(t, conformance.Config{
		Driver:     "btrfs",
		Executable: conformance.BuildDriver(t, "btrfs"),
		GraphRoot:  graphRootIn(mnt),
		Quota:      true,
	})
}

// graphRootIn returns a Config.GraphRoot making fresh directories under mnt.
func graphRootIn(mnt string) func(t testing.TB) string {
	return func(t testing.TB) string {
		dir, err := os.MkdirTemp(mnt, "case-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.RemoveAll(dir); err != nil {
				t.Errorf("remove graph root %s: %v", dir, err)
			}
		})
		return dir
	}
}
