package drivertest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit/drivertest"
	"github.com/pluggable-storage/storage/plugins/vfs/vfsdriver"
)

// TestInitRegistersCleanup drives the real vfs driver: Init works within the test, and the
// driver's Cleanup runs when the test ends (vfs's Cleanup deletes holder directories of dead
// calls, which is what is observed).
func TestInitRegistersCleanup(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, vfsdriver.Name)
	leftover := filepath.Join(home, "staging", "create-dead")
	t.Run("test", func(t *testing.T) {
		d := vfsdriver.New()
		info := drivertest.Init(t, d, pluginapi.InitOptions{Home: home, GraphRoot: root})
		if info.Name != vfsdriver.Name {
			t.Fatalf("Init returned Info %+v", info)
		}
		if err := d.Create(t.Context(), "l", "", pluginapi.CreateOpts{}); err != nil {
			t.Fatalf("driver not usable after Init: %v", err)
		}
		if err := os.Mkdir(leftover, 0o700); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("driver's Cleanup did not run at the end of the test: %s: %v", leftover, err)
	}
}

func TestTempDir(t *testing.T) {
	parent := t.TempDir()
	var dir string
	t.Run("test", func(t *testing.T) {
		dir = drivertest.TempDir(t, parent, "case-")
		if filepath.Dir(dir) != parent || !strings.HasPrefix(filepath.Base(dir), "case-") {
			t.Fatalf("TempDir = %s, want %s/case-*", dir, parent)
		}
		// What the test leaves in it goes with it.
		if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s survives the end of its test: %v", dir, err)
	}
}

func TestFillFile(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		size, want int
	}{
		{0, 0},
		{1, 1 << 20},
		{1 << 20, 1 << 20},
		{3<<20 + 1, 4 << 20},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "f")
		if err := drivertest.FillFile(p, c.size); err != nil {
			t.Fatalf("FillFile(%d): %v", c.size, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != int64(c.want) || st.Blocks*512 < int64(c.want) {
			t.Errorf("FillFile(%d): size %d, %d bytes allocated; want %d of each", c.size, st.Size, st.Blocks*512, c.want)
		}
	}
	if err := drivertest.FillFile(filepath.Join(dir, "missing", "f"), 1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FillFile in a missing directory: %v, want ErrNotExist", err)
	}
}
