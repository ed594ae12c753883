package driverkit

import (
	"fmt"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// fsNames are the statfs(2) f_type magic numbers of the file systems a graph root is commonly
// on, named as the established tools name them.
var fsNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC:      "extfs", // ext2, ext3 and ext4 share it
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	0x2FC12FC1:                 "zfs",
	unix.NFS_SUPER_MAGIC:       "nfs",
	unix.FUSE_SUPER_MAGIC:      "fuse",
	unix.F2FS_SUPER_MAGIC:      "f2fs",
	unix.RAMFS_MAGIC:           "ramfs",
	unix.SQUASHFS_MAGIC:        "squashfs",
	unix.V9FS_MAGIC:            "v9fs",
	unix.NSFS_MAGIC:            "nsfs",
}

// FSName names the file system with statfs(2) type magic ("extfs", "xfs", "btrfs", ...); ok is
// false for a type it does not know.
func FSName(magic int64) (name string, ok bool) {
	name, ok = fsNames[magic]
	return name, ok
}

// BackingFS names the file system holding path, for a driver's Status ("Backing Filesystem"):
// FSName of its type, or "<unknown 0x...>" with the type in hex. A failing statfs is returned
// as it is (an errno); the caller names the path.
func BackingFS(path string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", err
	}
	if name, ok := FSName(int64(st.Type)); ok {
		return name, nil
	}
	return fmt.Sprintf("<unknown %#x>", st.Type), nil
}

// MakePrivateBind makes dir a mount point with private propagation, so that the mounts a driver
// makes under it do not propagate to other mount namespaces (and theirs not here). dir is
// bind-mounted onto itself unless it already is a mount point: a second call (a restarted
// plugin's Init) does not stack another bind mount. Undoing it is the driver's Cleanup.
func MakePrivateBind(dir string) error {
	mounted, err := mountinfo.Mounted(dir)
	if err != nil {
		return fmt.Errorf("check mount of %s: %w", dir, err)
	}
	if !mounted {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}
