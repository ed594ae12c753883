package archive

import "fmt"

// ChangeKind says how a path differs between a layer and the layer it is compared with. The
// numbers are those of the established tool's JSON output (Modify=0, Add=1, Delete=2).
type ChangeKind int

const (
	ChangeModify ChangeKind = 0
	ChangeAdd    ChangeKind = 1
	ChangeDelete ChangeKind = 2
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeModify:
		return "Modify"
	case ChangeAdd:
		return "Add"
	case ChangeDelete:
		return "Delete"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change is one changed path. Path is absolute within the layer ("/etc/passwd"). The JSON field
// names (Path, Kind) are those the established tool prints for `changes --json`.
type Change struct {
	Path string
	Kind ChangeKind
}

// String renders a change the way `containers-storage changes` prints it: Add "/path".
func (c Change) String() string { return fmt.Sprintf("%s %q", c.Kind, c.Path) }

// Compression identifies a layer stream's compression. The numbers are those stored in
// layers.json's "compression" field.
type Compression int

const (
	Uncompressed Compression = 0
	Bzip2        Compression = 1
	Gzip         Compression = 2
	Xz           Compression = 3
	Zstd         Compression = 4
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "none"
	case Bzip2:
		return "bzip2"
	case Gzip:
		return "gzip"
	case Xz:
		return "xz"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// WhiteoutFormat says how deletions are represented on disk in a layer directory.
type WhiteoutFormat int

const (
	// WhiteoutOCI keeps deletions as they are in the tar: ".wh.<name>" files are not created;
	// applying one removes <name> from the target (used by full-copy drivers: vfs, btrfs, zfs).
	WhiteoutOCI WhiteoutFormat = iota
	// WhiteoutOverlay represents a deleted path as a 0/0 character device and an opaque directory
	// with the trusted.overlay.opaque=y xattr (overlay's upper dirs).
	WhiteoutOverlay
)
