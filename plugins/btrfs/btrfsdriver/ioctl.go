package btrfsdriver

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs ioctls this driver issues, with the kernel's structures from <linux/btrfs.h>. The
// request numbers are _IOW/_IOR/_IOWR(0x94, nr, size); the layouts were checked against the
// kernel headers (sizes 4096, 4096, 16, 16, 48 and 4096 bytes).
const (
	iocSubvolCreate  = 0x5000940e // _IOW(0x94, 14, struct btrfs_ioctl_vol_args)
	iocSnapDestroy   = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	iocInoLookup     = 0xd0009412 // _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)
	iocSnapCreateV2  = 0x50009417 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	iocQuotaCtl      = 0xc0109428 // _IOWR(0x94, 40, struct btrfs_ioctl_quota_ctl_args)
	iocQgroupCreate  = 0x4010942a // _IOW(0x94, 42, struct btrfs_ioctl_qgroup_create_args)
	iocQgroupLimit   = 0x8030942b // _IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args)
	iocQuotaRescanWt = 0x0000942e // _IO(0x94, 46)

	quotaCtlEnable  = 1      // BTRFS_QUOTA_CTL_ENABLE
	qgroupLimitRfer = 1 << 0 // BTRFS_QGROUP_LIMIT_MAX_RFER

	// firstFreeObjectID is the inode number of every subvolume's root directory
	// (BTRFS_FIRST_FREE_OBJECTID); a directory with it inside a layer is a nested subvolume.
	firstFreeObjectID = 256

	pathNameMax   = 4087 // BTRFS_PATH_NAME_MAX
	subvolNameMax = 4039 // BTRFS_SUBVOL_NAME_MAX
)

// volArgs is struct btrfs_ioctl_vol_args.
type volArgs struct {
	fd   int64
	name [pathNameMax + 1]byte
}

// volArgsV2 is struct btrfs_ioctl_vol_args_v2; the unions are laid out as their largest member.
type volArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64 // union { struct { size; qgroup_inherit* }; unused[4] }
	name    [subvolNameMax + 1]byte
}

// quotaCtlArgs is struct btrfs_ioctl_quota_ctl_args.
type quotaCtlArgs struct {
	cmd    uint64
	status uint64
}

// qgroupCreateArgs is struct btrfs_ioctl_qgroup_create_args.
type qgroupCreateArgs struct {
	create   uint64
	qgroupid uint64
}

// qgroupLimitArgs is struct btrfs_ioctl_qgroup_limit_args with its struct btrfs_qgroup_limit.
type qgroupLimitArgs struct {
	qgroupid uint64
	flags    uint64
	maxRfer  uint64
	maxExcl  uint64
	rsvRfer  uint64
	rsvExcl  uint64
}

// inoLookupArgs is struct btrfs_ioctl_ino_lookup_args.
type inoLookupArgs struct {
	treeid   uint64
	objectid uint64
	name     [4080]byte
}

// Compile-time checks of the layouts above.
var (
	_ [4096 - unsafe.Sizeof(volArgs{})]byte
	_ [unsafe.Sizeof(volArgs{}) - 4096]byte
	_ [4096 - unsafe.Sizeof(volArgsV2{})]byte
	_ [unsafe.Sizeof(volArgsV2{}) - 4096]byte
	_ [48 - unsafe.Sizeof(qgroupLimitArgs{})]byte
	_ [unsafe.Sizeof(qgroupLimitArgs{}) - 48]byte
	_ [4096 - unsafe.Sizeof(inoLookupArgs{})]byte
	_ [unsafe.Sizeof(inoLookupArgs{}) - 4096]byte
)

func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// openDir opens a directory for ioctls on it.
func openDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func setName(dst []byte, name string) error {
	if len(name) >= len(dst) || len(name) == 0 {
		return fmt.Errorf("subvolume name %q: bad length", name)
	}
	copy(dst, name)
	return nil
}

// subvolCreate creates the empty subvolume dir/name.
func subvolCreate(dir, name string) error {
	return volNameIoctl(dir, name, iocSubvolCreate, "create subvolume")
}

// subvolDestroy deletes the subvolume dir/name, which must hold no nested subvolume.
func subvolDestroy(dir, name string) error {
	return volNameIoctl(dir, name, iocSnapDestroy, "delete subvolume")
}

// volNameIoctl issues req, whose argument is a volArgs naming dir/name, on directory dir.
func volNameIoctl(dir, name string, req uintptr, op string) error {
	f, err := openDir(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	var args volArgs
	if err := setName(args.name[:], name); err != nil {
		return err
	}
	if err := ioctl(f.Fd(), req, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: op, Path: dir + "/" + name, Err: err}
	}
	return nil
}

// snapshotCreate makes dir/name a writable snapshot of the subvolume src.
func snapshotCreate(src, dir, name string) error {
	sf, err := openDir(src)
	if err != nil {
		return err
	}
	defer sf.Close()
	df, err := openDir(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	var args volArgsV2
	args.fd = int64(sf.Fd())
	if err := setName(args.name[:], name); err != nil {
		return err
	}
	if err := ioctl(df.Fd(), iocSnapCreateV2, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: "snapshot " + src, Path: dir + "/" + name, Err: err}
	}
	return nil
}

// subvolID returns the ID (tree ID, also its level-0 qgroup ID) of the subvolume at path.
func subvolID(path string) (uint64, error) {
	f, err := openDir(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	args := inoLookupArgs{objectid: firstFreeObjectID}
	if err := ioctl(f.Fd(), iocInoLookup, unsafe.Pointer(&args)); err != nil {
		return 0, &os.PathError{Op: "look up subvolume id", Path: path, Err: err}
	}
	return args.treeid, nil
}

// quotaEnable turns quota accounting on for the file system holding path and waits for the
// initial rescan, so that limits set afterwards count what is already there.
func quotaEnable(path string) error {
	f, err := openDir(path)
	if err != nil {
		return err
	}
	defer f.Close()
	args := quotaCtlArgs{cmd: quotaCtlEnable}
	if err := ioctl(f.Fd(), iocQuotaCtl, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: "enable quota", Path: path, Err: err}
	}
	if err := ioctl(f.Fd(), iocQuotaRescanWt, nil); err != nil {
		return &os.PathError{Op: "wait for quota rescan", Path: path, Err: err}
	}
	return nil
}

// qgroupLimit limits the referenced bytes of the subvolume at path (its level-0 qgroup, which
// the kernel names by qgroupid 0 = the subvolume of the fd).
func qgroupLimit(path string, maxRfer uint64) error {
	f, err := openDir(path)
	if err != nil {
		return err
	}
	defer f.Close()
	args := qgroupLimitArgs{flags: qgroupLimitRfer, maxRfer: maxRfer}
	if err := ioctl(f.Fd(), iocQgroupLimit, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: "limit qgroup", Path: path, Err: err}
	}
	return nil
}

// qgroupDestroy removes the level-0 qgroup of a deleted subvolume, issued on any directory of
// the file system.
func qgroupDestroy(fsPath string, id uint64) error {
	f, err := openDir(fsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	args := qgroupCreateArgs{create: 0, qgroupid: id}
	if err := ioctl(f.Fd(), iocQgroupCreate, unsafe.Pointer(&args)); err != nil {
		return &os.PathError{Op: fmt.Sprintf("destroy qgroup 0/%d", id), Path: fsPath, Err: err}
	}
	return nil
}
