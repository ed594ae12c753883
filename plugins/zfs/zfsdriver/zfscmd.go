package zfsdriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
)

// backend says which ZFS implementation serves the zfs command. It decides how layers are
// mounted: the kernel module mounts legacy datasets with mount(8); zfs-fuse has no mount helper
// and mounts only through its daemon (zfs mount, with the mountpoint property set).
type backend int

const (
	backendKernel backend = iota // OpenZFS kernel module (/sys/module/zfs)
	backendFuse                  // the zfs-fuse daemon
)

func (b backend) String() string {
	if b == backendFuse {
		return "zfs-fuse"
	}
	return "kernel"
}

// detectBackend finds the zfs command and the implementation behind it. Neither being present is
// ErrNotSupported with the reason.
func detectBackend() (zfsPath string, b backend, err error) {
	zfsPath, err = exec.LookPath("zfs")
	if err != nil {
		return "", 0, fmt.Errorf("zfs command not found in PATH (install zfsutils-linux or zfs-fuse): %w", errdefs.ErrNotSupported)
	}
	if _, err := os.Stat("/sys/module/zfs"); err == nil {
		if _, err := os.Stat("/dev/zfs"); err != nil {
			return "", 0, fmt.Errorf("zfs kernel module is loaded but /dev/zfs is missing: %w", errdefs.ErrNotSupported)
		}
		return zfsPath, backendKernel, nil
	}
	if fusePID() > 0 {
		return zfsPath, backendFuse, nil
	}
	return "", 0, fmt.Errorf("no ZFS: the zfs kernel module is not loaded (/sys/module/zfs) and no zfs-fuse daemon runs: %w", errdefs.ErrNotSupported)
}

// fusePID returns the PID of a running zfs-fuse daemon, 0 when there is none.
func fusePID() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(comm)) == "zfs-fuse" {
			return pid
		}
	}
	return 0
}

// zfsError is a failed zfs or mount command with its stderr.
type zfsError struct {
	args   []string
	stderr string
	err    error
	class  error
}

func (e *zfsError) Error() string {
	msg := e.stderr
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("%s: %s", strings.Join(e.args, " "), msg)
}

func (e *zfsError) Unwrap() []error {
	if e.class != nil {
		return []error{e.err, e.class}
	}
	return []error{e.err}
}

// classify maps the zfs command's messages to error classes.
func classify(stderr string) error {
	switch {
	case strings.Contains(stderr, "does not exist"), strings.Contains(stderr, "could not find"):
		return errdefs.ErrNotFound
	case strings.Contains(stderr, "already exists"):
		return errdefs.ErrAlreadyExists
	case strings.Contains(stderr, "dependent clones"), strings.Contains(stderr, "has children"),
		strings.Contains(stderr, "is busy"), strings.Contains(stderr, "pool is busy"):
		return errdefs.ErrInUse
	case strings.Contains(stderr, "connect"), strings.Contains(stderr, "failed to initialize ZFS library"):
		// zfs-fuse's daemon socket is gone, or /dev/zfs cannot be opened.
		return errdefs.ErrUnavailable
	}
	return nil
}

// command runs a ZFS command (the zfs binary, or mount) and returns its trimmed stdout.
func command(ctx context.Context, path string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return "", fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), cerr)
		}
		msg := strings.TrimSpace(stderr.String())
		return "", &zfsError{args: append([]string{path}, args...), stderr: msg, err: err, class: classify(msg)}
	}
	return strings.TrimSpace(stdout.String()), nil
}

// zfs runs the zfs command.
func (st *state) zfs(ctx context.Context, args ...string) (string, error) {
	return command(ctx, st.zfsPath, args...)
}

// datasetExists reports whether dataset name exists.
func (st *state) datasetExists(ctx context.Context, name string) (bool, error) {
	_, err := st.zfs(ctx, "list", "-H", "-o", "name", name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// property returns one property of dataset name.
func (st *state) property(ctx context.Context, name, prop string) (string, error) {
	return st.zfs(ctx, "get", "-H", "-o", "value", prop, name)
}
