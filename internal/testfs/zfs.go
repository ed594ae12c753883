package testfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// zfsImageSize is the pool's backing file size (file vdevs need at least 64 MiB).
const zfsImageSize = 256 << 20

// KernelZFS reports whether the OpenZFS kernel module is loaded (then no daemon is needed).
func KernelZFS() bool {
	_, err := os.Stat("/sys/module/zfs")
	return err == nil
}

// NewZFS is ZFS for callers without a testing.TB (TestMain). dataset is the new pool's root
// dataset, mounted at mountpoint. cleanup destroys the pool, gives up this caller's use of the
// zfs-fuse daemon (stopping it if testfs started it and nobody else uses it) and removes the
// backing file; it is safe to call once.
func NewZFS() (dataset, mountpoint string, cleanup func() error, err error) {
	if err := checkRoot("zfs pool"); err != nil {
		return "", "", nil, err
	}
	if err := lookTools("zpool", "zfs"); err != nil {
		return "", "", nil, err
	}
	var undo []func() error
	var dir string
	cleanup = func() error {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		if dir != "" {
			errs = append(errs, os.RemoveAll(dir))
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (string, string, func() error, error) {
		return "", "", nil, errors.Join(err, cleanup())
	}

	if !KernelZFS() {
		release, err := acquireZFSFuse()
		if err != nil {
			return "", "", nil, err
		}
		undo = append(undo, release)
	}

	if dir, err = os.MkdirTemp("", "testfs-zfs-"); err != nil {
		return fail(err)
	}
	image := filepath.Join(dir, "zfs.img")
	f, err := os.Create(image)
	if err != nil {
		return fail(err)
	}
	err = f.Truncate(zfsImageSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fail(err)
	}
	pool := "testfs" + hex.EncodeToString(suffix[:])
	mnt := filepath.Join(dir, "mnt")
	// cachefile=none: a pool left by a killed test is not re-imported when the daemon restarts.
	unlock, err := lockPools()
	if err != nil {
		return fail(err)
	}
	_, err = run("zpool", "create", "-f", "-o", "cachefile=none", "-m", mnt, pool, image)
	unlock()
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() error { return destroyPool(pool, mnt) })
	return pool, mnt, cleanup, nil
}

// lockPools serialises creating and destroying pools across goroutines and test processes:
// zfs-fuse has been seen to wedge (every file system call on its mounts hanging) when two
// `zpool create` ran at once. Kernel OpenZFS needs no such care.
func lockPools() (unlock func(), err error) {
	if KernelZFS() {
		return func() {}, nil
	}
	f, err := lockFile("pools", unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock zfs pool creation: %w", err)
	}
	return func() { f.Close() }, nil
}

// destroyPool destroys pool and makes sure nothing stays mounted under mnt (datasets a test
// mounted elsewhere are unmounted by zpool destroy too).
func destroyPool(pool, mnt string) error {
	// zfs-fuse reports a pool "busy" for a moment after its files were last used.
	unlock, err := lockPools()
	if err != nil {
		return fmt.Errorf("destroy pool %s: %w", pool, err)
	}
	defer unlock()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err = run("zpool", "destroy", "-f", pool)
		if err == nil || !strings.Contains(err.Error(), "busy") || time.Now().After(deadline) {
			break
		}
	}
	err = errors.Join(err, unmountTree(mnt))
	if err != nil {
		return fmt.Errorf("destroy pool %s: %w", pool, err)
	}
	return nil
}
