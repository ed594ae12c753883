package pluginapi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
)

// ExecutablePrefix is the file name prefix of driver plugins: the executable of driver "vfs" is
// containers-storage-driver-vfs.
const ExecutablePrefix = "containers-storage-driver-"

// FindExecutable returns the plugin executable of driver. A non-empty path is used as is.
// Otherwise ExecutablePrefix+driver is looked for in each of dirs in order, then in the directory
// of the running executable; the first file found decides.
//
// Errors: nothing found is ErrNotFound naming the driver and every place looked; a file found that
// is a directory or not executable is ErrInvalidArgument naming it.
func FindExecutable(driver, path string, dirs []string) (string, error) {
	if driver == "" || strings.ContainsAny(driver, "/\x00") || driver == "." || driver == ".." {
		return "", fmt.Errorf("driver %q: invalid driver name: %w", driver, errdefs.ErrInvalidArgument)
	}
	if path != "" {
		found, err := checkExecutable(driver, path)
		if err != nil {
			return "", err
		}
		if !found {
			return "", fmt.Errorf("driver %q: plugin executable %s: %w", driver, path, errdefs.ErrNotFound)
		}
		return path, nil
	}
	name := ExecutablePrefix + driver
	places := append([]string(nil), dirs...)
	if exe, err := os.Executable(); err == nil {
		places = append(places, filepath.Dir(exe))
	}
	var looked []string
	for _, dir := range places {
		if dir == "" {
			continue
		}
		candidate := filepath.Join(dir, name)
		looked = append(looked, candidate)
		found, err := checkExecutable(driver, candidate)
		if err != nil {
			return "", err
		}
		if found {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("driver %q: plugin executable %s not found (looked at %s): %w",
		driver, name, strings.Join(looked, ", "), errdefs.ErrNotFound)
}

// checkExecutable reports whether path exists; an existing file that cannot be run is an error.
func checkExecutable(driver, path string) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("driver %q: plugin executable %s: %w", driver, path, errdefs.WithClass(errdefs.ErrInvalidArgument, err.Error()))
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("driver %q: plugin executable %s is not a regular file: %w", driver, path, errdefs.ErrInvalidArgument)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return false, fmt.Errorf("driver %q: plugin executable %s is not executable (mode %v): %w", driver, path, fi.Mode().Perm(), errdefs.ErrInvalidArgument)
	}
	return true, nil
}
