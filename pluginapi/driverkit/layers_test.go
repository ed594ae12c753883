package driverkit

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestIsDirName(t *testing.T) {
	cases := []struct {
		id   string
		want bool
	}{
		{"abc", true},
		{"0123456789abcdef", true},
		{"a.b", true},
		{"..a", true},
		{"a:b,c", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"/a", false},
		{"../x", false},
		{"a\x00b", false},
	}
	for _, c := range cases {
		if got := IsDirName(c.id); got != c.want {
			t.Errorf("IsDirName(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}

// TestListDirs: directories only, sorted; files and symbolic links (even to directories) are
// skipped; a missing directory is ErrNotExist.
func TestListDirs(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"b", "a", "c"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "link-to-a")); err != nil {
		t.Fatal(err)
	}
	got, err := ListDirs(dir)
	if err != nil || !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("ListDirs = %q, %v; want [a b c]", got, err)
	}

	empty, err := ListDirs(filepath.Join(dir, "a"))
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("ListDirs of an empty directory = %#v, %v; want an empty, non-nil list", empty, err)
	}
	if _, err := ListDirs(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ListDirs of a missing directory: %v, want ErrNotExist", err)
	}
}
