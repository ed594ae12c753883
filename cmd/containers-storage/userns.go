package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// usernsEnv marks a process that was re-executed inside a user namespace (the variable name is
// the established tool's).
const usernsEnv = "_CONTAINERS_USERNS_CONFIGURED"

// isRootless reports whether we run without root privileges (the default of --unshare).
func isRootless() bool { return os.Geteuid() != 0 }

// reexecInUserNamespace runs this command again inside a new user and mount namespace in which
// the caller's UID and GID are mapped to root, and returns the child's exit code with
// reexeced=true. It does nothing (reexeced=false) when we are root already or are the
// re-executed child. Only the caller's own IDs are mapped (no newuidmap/subordinate ranges), so
// files owned by other IDs show up as the overflow ID inside.
func reexecInUserNamespace(stderr io.Writer) (code int, reexeced bool) {
	if !isRootless() || os.Getenv(usernsEnv) != "" {
		return 0, false
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), usernsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), true
		}
		fmt.Fprintf(stderr, "re-executing in a user namespace: %v\n", err)
		return 1, true
	}
	return 0, true
}

func init() {
	register(&command{
		names:       []string{"unshare"},
		optionsHelp: "[command [...]]",
		usage:       "Run a command in a user namespace",
		minArgs:     0,
		maxArgs:     -1,
		action:      unshareCmd,
	})
}

// unshareCmd runs args (default $SHELL, else /bin/sh) in a user namespace; as root it runs it
// directly. A failing command makes the exit code 1, with its error on stderr.
func unshareCmd(inv *invocation, args []string) (int, error) {
	if code, reexeced := reexecInUserNamespace(inv.stderr); reexeced {
		return code, nil
	}
	if len(args) == 0 {
		shell := os.Getenv("SHELL")
		if shell == "" {
			shell = "/bin/sh"
		}
		args = []string{shell}
	}
	cmd := exec.CommandContext(inv.ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inv.stdin, inv.stdout, inv.stderr
	if err := cmd.Run(); err != nil {
		return 1, err
	}
	return 0, nil
}
