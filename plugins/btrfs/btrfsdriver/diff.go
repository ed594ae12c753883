package btrfsdriver

import (
	"github.com/pluggable-storage/storage/archive"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
	"github.com/pluggable-storage/storage/pluginapi/naive"
)

// differ is embedded in Driver: Diff, ApplyDiff, Changes and DiffSize are those of the naive
// differ that Init makes (newDiffer), through driverkit.ForwardDiffer (see New), which fails
// them with errNotInitialized before Init.
type differ = pluginapi.Differ

// newDiffer returns the naive differ over subvolumes; nothing is mounted, so they need no
// release. Deletions are applied as OCI whiteouts remove them: a btrfs layer is a full tree.
func newDiffer(st *state) pluginapi.Differ {
	return naive.New(driverkit.PlainDirs(st.lookup), archive.ApplyOptions{WhiteoutFormat: archive.WhiteoutOCI})
}
