package zfsdriver_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pluggable-storage/storage/conformance"
	"github.com/pluggable-storage/storage/internal/testfs"
	"github.com/pluggable-storage/storage/pluginapi/driverkit/drivertest"
)

// One pool serves every test of this binary: starting zfs-fuse and creating a pool costs
// seconds. Each test gets its own child dataset and graph root directory in it.
var (
	poolDS, poolMnt string
	poolErr         error
)

func TestMain(m *testing.M) {
	var cleanup func() error
	poolDS, poolMnt, cleanup, poolErr = testfs.NewZFS()
	code := m.Run()
	if cleanup != nil {
		if err := cleanup(); err != nil {
			fmt.Fprintf(os.Stderr, "zfs test pool teardown: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// testPool returns the shared pool, skipping (or, with CI=true, failing) t when the machine
// cannot make one.
func testPool(t testing.TB) (dataset, mountpoint string) {
	t.Helper()
	if poolErr != nil {
		if errors.Is(poolErr, testfs.ErrPrerequisite) && os.Getenv("CI") != "true" {
			t.Skipf("no zfs test pool: %v", poolErr)
		}
		t.Fatalf("no zfs test pool: %v", poolErr)
	}
	return poolDS, poolMnt
}

// testDataset creates the child dataset <pool>/<name> (legacy mountpoint, unmounted) to serve
// as one test's fsname, destroyed at cleanup.
func testDataset(t testing.TB, name string) string {
	t.Helper()
	pool, _ := testPool(t)
	ds := pool + "/" + name
	zfs(t, "create", "-o", "mountpoint=legacy", ds)
	t.Cleanup(func() {
		if out, err := exec.Command("zfs", "destroy", "-r", ds).CombinedOutput(); err != nil {
			t.Errorf("destroy test dataset %s: %v: %s", ds, err, out)
		}
	})
	return ds
}

// testRoot returns a fresh graph root directory on the pool's mountpoint.
func testRoot(t testing.TB) string {
	t.Helper()
	_, mnt := testPool(t)
	return drivertest.TempDir(t, mnt, "root-")
}

// zfs runs the zfs command for a test and returns its trimmed output.
func zfs(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("zfs", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("zfs %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// datasetExists reports whether zfs lists name (a dataset or snapshot).
func datasetExists(t testing.TB, name string) bool {
	t.Helper()
	out, err := exec.Command("zfs", "list", "-H", "-t", "all", "-o", "name", name).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "does not exist") {
			return false
		}
		t.Fatalf("zfs list %s: %v: %s", name, err, out)
	}
	return true
}

func homeOf(root string) string { return filepath.Join(root, "zfs") }

// buildPlugin builds the zfs plugin executable once per test binary.
func buildPlugin(t testing.TB) string { return conformance.BuildDriver(t, "zfs") }
