package driverkit

import (
	"os"
	"strings"
)

// IsDirName reports whether id can be used as one directory name: not empty, not "." or "..",
// and holding no "/" or NUL. The store does not validate caller-supplied layer IDs, so a driver
// that joins an ID to a path checks it with this first (adding its own limits, such as a length
// or more forbidden characters).
func IsDirName(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\x00")
}

// ListDirs returns the names of the directories directly in dir (not following symbolic links),
// sorted by name; other entries are skipped. A driver keeping one directory per layer lists
// its layers with it.
func ListDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
