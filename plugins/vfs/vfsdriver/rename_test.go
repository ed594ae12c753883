package vfsdriver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRenameNoReplaceKeepsEmptyDirectory: the final rename of Create must not replace an
// existing layer, even an empty base layer, which plain rename(2) silently replaces.
func TestRenameNoReplaceKeepsEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	old, existing := filepath.Join(dir, "staged"), filepath.Join(dir, "existing")
	for _, p := range []string{old, existing} {
		if err := os.Mkdir(p, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := renameNoReplace(old, existing)
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("renameNoReplace over an empty directory = %v, want EEXIST", err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the staged directory is gone after a refused rename: %v", err)
	}
	if err := renameNoReplace(old, filepath.Join(dir, "new")); err != nil {
		t.Fatalf("renameNoReplace to a free name: %v", err)
	}
}
