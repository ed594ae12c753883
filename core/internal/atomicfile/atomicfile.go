// Package atomicfile replaces files so that a crash never leaves a partial one: the store writes
// layers.json, images.json, containers.json, mountpoints.json and big-data files through it.
//
// Crash contract of WriteFile(path, ...):
//   - Before the rename, path is untouched; a temporary file ".<name>.tmp-*" in the same
//     directory may be left behind only by a crash (errors remove it). Readers never look at it.
//   - The rename is atomic: a reader or a crash sees the old content or the new, never a mix.
//   - With sync (noSync false) the data is fsynced before the rename and the directory after it,
//     so once WriteFile returns the new content survives a power loss. With noSync (the
//     volatile-*.json files, lost anyway on reboot in transient mode) the content after a power
//     loss may be the old file, the new one, or, on some file systems, an empty file.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// failpoint, when set (only by this package's tests), is called at each named moment of
// WriteFile and aborts it with the error it returns, as a crash or an I/O error at that moment
// would.
var failpoint func(moment string) error

func fail(moment string) error {
	if failpoint == nil {
		return nil
	}
	return failpoint(moment)
}

// WriteFile replaces path with data atomically: a temporary file in the same directory, write,
// fsync (unless noSync), rename over path, fsync of the directory (unless noSync). A crash leaves
// either the old or the new content, never a partial file; the temporary file is removed on error.
// The new file has exactly mode (the umask does not apply). The directory must exist.
func WriteFile(path string, data []byte, mode os.FileMode, noSync bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if err != nil && !renamed {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := fail("after-write"); err != nil {
		return err
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fail("before-rename"); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	if noSync {
		return nil
	}
	// The new content is in place (no temporary file is left to remove); a failing directory
	// sync only weakens durability, but the caller asked for it, so it is reported.
	if serr := syncDir(dir); serr != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, serr)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
