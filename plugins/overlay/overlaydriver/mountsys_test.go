package overlaydriver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
)

// TestMountAPIs mounts a stack of relative lowers through the new mount API and through the
// mount(2) fallback used on kernels without it: both show the top-most copy of a file, neither
// changes the process's working directory, and the fallback refuses a chain whose options do not
// fit in a page with ErrNotSupported instead of a truncated mount.
func TestMountAPIs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting overlays needs root")
	}
	cases := []struct {
		name    string
		mount   func(overlaySpec) error
		lowers  int
		wantErr error
	}{
		{"NewAPI/128", fsmountOverlay, 128, nil},
		{"NewAPI/500", fsmountOverlay, 500, nil},
		{"Legacy/100", legacyMountOverlay, 100, nil},
		{"Legacy/500", legacyMountOverlay, 500, errdefs.ErrNotSupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var lowers []string
			for i := range c.lowers {
				// Names as long as l/<short> entries.
				l := fmt.Sprintf("l/%026d", i)
				if err := os.MkdirAll(filepath.Join(dir, l), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, l, "f"), []byte(fmt.Sprint(i)), 0o644); err != nil {
					t.Fatal(err)
				}
				lowers = append(lowers, l)
			}
			for _, d := range []string{"upper", "work", "merged"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cwd, _ := os.Getwd()
			s := overlaySpec{dir: dir, lowers: lowers, upper: "upper", work: "work", target: "merged"}
			err := inDir(dir, func() error { return c.mount(s) })
			t.Cleanup(func() {
				if err := unmountAll(filepath.Join(dir, "merged")); err != nil {
					t.Error(err)
				}
			})
			if now, _ := os.Getwd(); now != cwd {
				t.Errorf("working directory changed from %s to %s", cwd, now)
			}
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("mount: %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(dir, "merged", "f")); err != nil || string(got) != "0" {
				t.Errorf("merged/f = %q, %v; want the nearest lower's copy", got, err)
			}
		})
	}
}
