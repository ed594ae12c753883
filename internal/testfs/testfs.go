// Package testfs builds real file systems for tests: a loop-mounted btrfs image and a ZFS pool on a
// sparse file (served by zfs-fuse, or by the kernel module when OpenZFS is loaded).
//
// Each helper comes in two forms. The testing.TB form (Btrfs, ZFS) registers its teardown with
// t.Cleanup and turns a missing prerequisite into t.Skip with the reason, except when the
// environment variable CI is "true", where it is t.Fatal: CI machines have everything. The
// plain form (NewBtrfs, NewZFS) returns a cleanup function and an error wrapping
// ErrPrerequisite, for TestMain.
//
// Teardown leaves nothing behind: mounts are unmounted, loop devices detached, pools destroyed,
// image files removed, and a zfs-fuse daemon that testfs started is stopped by its PID once no
// test process on the machine uses it any more (see zfsfuse.go for the cross-process protocol).
package testfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
)

// ErrPrerequisite is wrapped by errors saying the machine cannot build the file system: not root,
// a missing tool, or no kernel support. Class ErrNotSupported.
var ErrPrerequisite = errdefs.Sentinel(errdefs.ErrNotSupported, "test file system prerequisite missing")

// Btrfs makes a sparse image file, formats it with mkfs.btrfs, loop-mounts it at a temporary
// directory and returns that directory. t.Cleanup unmounts it, detaches the loop device and
// removes the image.
func Btrfs(t testing.TB) (mountpoint string) {
	t.Helper()
	mnt, cleanup, err := NewBtrfs()
	require(t, err)
	t.Cleanup(func() {
		if err := cleanup(); err != nil {
			t.Errorf("testfs: btrfs teardown: %v", err)
		}
	})
	return mnt
}

// ZFS returns a fresh pool's root dataset and its mountpoint. It starts the zfs-fuse daemon when
// neither it nor the kernel module is present. t.Cleanup destroys the pool, stops the daemon if
// this was its last user and testfs started it, and removes the backing file.
func ZFS(t testing.TB) (dataset, mountpoint string) {
	t.Helper()
	ds, mnt, cleanup, err := NewZFS()
	require(t, err)
	t.Cleanup(func() {
		if err := cleanup(); err != nil {
			t.Errorf("testfs: zfs teardown: %v", err)
		}
	})
	return ds, mnt
}

// require applies the skip/fatal rule to err.
func require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrPrerequisite) && os.Getenv("CI") != "true" {
		t.Skipf("testfs: %v", err)
	}
	t.Fatalf("testfs: %v", err)
}

// checkRoot returns an ErrPrerequisite error unless the process is root.
func checkRoot(what string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s needs root (euid %d): %w", what, os.Geteuid(), ErrPrerequisite)
	}
	return nil
}

// lookTools returns an ErrPrerequisite error naming the first tool missing from PATH (with /sbin
// and /usr/sbin added, where Debian puts them).
func lookTools(tools ...string) error {
	for _, tool := range tools {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("%s not installed: %w", tool, ErrPrerequisite)
		}
	}
	return nil
}

func lookPath(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := dir + "/" + tool
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", tool, exec.ErrNotFound)
}

// run runs a tool and returns its trimmed stdout; the error carries the command and its stderr.
func run(tool string, args ...string) (string, error) {
	path, err := lookPath(tool)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// kernelHasFS reports whether /proc/filesystems lists fstype.
func kernelHasFS(fstype string) bool {
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}
