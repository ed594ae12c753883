package zfsdriver

import (
	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/naive"
)

// differ is embedded in Driver: Diff, ApplyDiff, Changes and DiffSize are those of the naive
// differ that Init makes (newDiffer), through driverkit.ForwardDiffer (see New), which fails
// them with errNotInitialized before Init.
type differ = pluginapi.Differ

// newDiffer returns the naive differ over mounted datasets (layerDirs, mount.go). Deletions are
// applied as OCI whiteouts remove them: a zfs layer is a full tree.
func newDiffer(st *state) pluginapi.Differ {
	return naive.New(layerDirs{st}, archive.ApplyOptions{WhiteoutFormat: archive.WhiteoutOCI})
}
