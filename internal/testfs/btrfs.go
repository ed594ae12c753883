package testfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// btrfsImageSize is the sparse image's size: above mkfs.btrfs's minimum, small on disk.
const btrfsImageSize = 512 << 20

// NewBtrfs is Btrfs for callers without a testing.TB (TestMain). cleanup unmounts, detaches the
// loop device and removes the temporary directory holding the image and the mountpoint; it is
// safe to call once.
func NewBtrfs() (mountpoint string, cleanup func() error, err error) {
	if err := checkRoot("btrfs loop mount"); err != nil {
		return "", nil, err
	}
	if err := lookTools("mkfs.btrfs", "losetup"); err != nil {
		return "", nil, err
	}
	if !kernelHasFS("btrfs") {
		// The module may just not be loaded yet.
		_, _ = run("modprobe", "btrfs")
		if !kernelHasFS("btrfs") {
			return "", nil, fmt.Errorf("kernel has no btrfs support: %w", ErrPrerequisite)
		}
	}

	dir, err := os.MkdirTemp("", "testfs-btrfs-")
	if err != nil {
		return "", nil, err
	}
	var undo []func() error
	cleanup = func() error {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		errs = append(errs, os.RemoveAll(dir))
		return errors.Join(errs...)
	}
	fail := func(err error) (string, func() error, error) {
		return "", nil, errors.Join(err, cleanup())
	}

	image := filepath.Join(dir, "btrfs.img")
	f, err := os.Create(image)
	if err != nil {
		return fail(err)
	}
	err = f.Truncate(btrfsImageSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if _, err := run("mkfs.btrfs", "-q", "-f", image); err != nil {
		return fail(err)
	}
	dev, err := run("losetup", "--find", "--show", image)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() error {
		_, err := run("losetup", "--detach", dev)
		return err
	})
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return fail(err)
	}
	if err := unix.Mount(dev, mnt, "btrfs", 0, ""); err != nil {
		return fail(fmt.Errorf("mount %s on %s: %w", dev, mnt, err))
	}
	undo = append(undo, func() error { return unmountTree(mnt) })
	return mnt, cleanup, nil
}

// unmountTree unmounts mnt and every mount below it (a driver's home bind mount left by a test
// that failed before the driver's Cleanup), deepest first.
func unmountTree(mnt string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(mnt))
	if err != nil {
		return err
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	for _, m := range mounts {
		errs = append(errs, unmount(m.Mountpoint))
	}
	return errors.Join(errs...)
}

// unmount unmounts mnt, falling back to a lazy unmount when it is busy, so that teardown never
// leaves the mount behind (a lazy unmount still frees the loop device once the last user goes).
func unmount(mnt string) error {
	err := unix.Unmount(mnt, 0)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.EBUSY) {
		if lerr := unix.Unmount(mnt, unix.MNT_DETACH); lerr == nil {
			return fmt.Errorf("unmount %s: busy, detached lazily", mnt)
		}
	}
	return fmt.Errorf("unmount %s: %w", mnt, err)
}
