package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// onlyFile fails unless dir holds exactly the one entry name: no temporary file was left behind.
func onlyFile(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name   string
		old    []byte // nil: no existing file
		data   []byte
		mode   os.FileMode
		noSync bool
	}{
		{name: "new file", data: []byte(`[{"id":"a"}]`), mode: 0o600},
		{name: "new file no sync", data: []byte(`[]`), mode: 0o600, noSync: true},
		{name: "replace", old: []byte("old content that is longer"), data: []byte("new"), mode: 0o600},
		{name: "replace no sync", old: []byte("old"), data: []byte("new content"), mode: 0o644, noSync: true},
		{name: "empty data", old: []byte("old"), data: []byte{}, mode: 0o600},
		{name: "mode ignores umask", data: []byte("x"), mode: 0o666},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "layers.json")
			if tt.old != nil {
				if err := os.WriteFile(path, tt.old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(path, tt.data, tt.mode, tt.noSync); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Errorf("content %q, want %q", got, tt.data)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tt.mode {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tt.mode)
			}
			onlyFile(t, dir, "layers.json")
		})
	}
}

// TestFailpoints: an error at each moment before the rename leaves the old file (or no file)
// and no temporary file.
func TestFailpoints(t *testing.T) {
	injected := errors.New("injected failure")
	for _, moment := range []string{"after-write", "before-rename"} {
		for _, existing := range []bool{true, false} {
			name := moment + "/new file"
			if existing {
				name = moment + "/existing file"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "images.json")
				if existing {
					if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				reached := false
				failpoint = func(m string) error {
					if m == moment {
						reached = true
						return injected
					}
					return nil
				}
				defer func() { failpoint = nil }()

				err := WriteFile(path, []byte("new content"), 0o600, false)
				if !reached {
					t.Fatalf("failpoint %s never reached", moment)
				}
				if !errors.Is(err, injected) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want the injected error naming %s", err, path)
				}
				if existing {
					if got, _ := os.ReadFile(path); string(got) != "old" {
						t.Errorf("content after failure %q, want the old content", got)
					}
					onlyFile(t, dir, "images.json")
				} else {
					onlyFile(t, dir)
				}
			})
		}
	}
}

// TestFullFileSystem: a real ENOSPC in the middle of the write (a tiny tmpfs) keeps the old file.
func TestFullFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	path := filepath.Join(dir, "containers.json")
	old := bytes.Repeat([]byte("o"), 1024)
	if err := WriteFile(path, old, 0o600, false); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, bytes.Repeat([]byte("n"), 1<<20), 0o600, false)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Fatalf("writing past the tmpfs size: %v, want ENOSPC naming %s", err, path)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, old) {
		t.Errorf("content after ENOSPC is %d bytes, want the old %d", len(got), len(old))
	}
	onlyFile(t, dir, "containers.json")
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "layers.json")
	err := WriteFile(path, []byte("x"), 0o600, false)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want not-exist naming %s", err, path)
	}
}
