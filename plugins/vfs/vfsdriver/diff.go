package vfsdriver

import (
	"errors"

	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
	"github.com/pluggable-storage/storage/pluginapi/naive"
)

// differ is embedded in Driver: Diff, ApplyDiff, Changes and DiffSize are those of the naive
// differ that Init makes (newDiffer), through driverkit.ForwardDiffer (see New), which fails
// them with errNotInitialized before Init.
type differ = pluginapi.Differ

// newDiffer returns the naive differ over vfs layer directories. vfs mounts nothing, so the
// directories need no release.
func newDiffer(st *state) pluginapi.Differ {
	dirs := driverkit.PlainDirs(func(id string) (string, error) {
		dir, err := st.lookup(id)
		if errors.Is(err, errLayerUnknown) {
			return "", errLayerUnknown // the differ names the layer
		}
		return dir, err
	})
	return naive.New(dirs, archive.ApplyOptions{IgnoreChownErrors: st.opts.ignoreChownErrors})
}
