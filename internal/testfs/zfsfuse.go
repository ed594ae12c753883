package testfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The zfs-fuse daemon is machine-wide (one control socket, /var/run/zfs/zfs_socket), while
// several test processes (this package's, the drivers', the CLI's) may want it at once. They
// share it through flock(2) locks in fuseStateDir:
//
//   - "mutex" is held exclusively while a process decides to start or stop the daemon;
//   - "users" is held shared by every process (every NewZFS call) using the daemon;
//   - "daemon.pid" is the pidfile of a daemon testfs started; it exists only for such a daemon.
//
// A user leaving takes the mutex, drops its shared lock and tries a non-blocking exclusive lock
// on "users": if that succeeds nobody else uses the daemon, and if testfs started it (pidfile
// naming a live zfs-fuse) it is stopped by that PID. A daemon running before any test is never
// stopped. The kernel drops the locks of a killed test process, so a crash leaves at most the
// daemon running, which the next run adopts and stops.
const fuseStateDir = "/run/testfs-zfs-fuse"

// acquireZFSFuse makes sure a zfs-fuse daemon serves the zfs/zpool commands and registers the
// caller as a user. release gives the use up.
func acquireZFSFuse() (release func() error, err error) {
	if err := lookTools("zfs-fuse"); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("no /dev/fuse for zfs-fuse: %w", ErrPrerequisite)
	}
	if err := os.MkdirAll(fuseStateDir, 0o700); err != nil {
		return nil, err
	}
	mutex, err := lockFile("mutex", unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer mutex.Close()
	users, err := lockFile("users", unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	if len(zfsFusePIDs()) == 0 {
		if err := startZFSFuse(); err != nil {
			users.Close()
			return nil, err
		}
	}
	return func() error { return releaseZFSFuse(users) }, nil
}

func releaseZFSFuse(users *os.File) error {
	mutex, err := lockFile("mutex", unix.LOCK_EX)
	if err != nil {
		users.Close()
		return err
	}
	defer mutex.Close()
	users.Close() // drops the shared lock
	last, err := lockFile("users", unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil // someone else still uses the daemon
	}
	if err != nil {
		return err
	}
	defer last.Close()
	return stopZFSFuse()
}

func lockFile(name string, how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(fuseStateDir, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// startZFSFuse starts the daemon, records its PID in our pidfile and waits until it answers.
func startZFSFuse() error {
	path, err := lookPath("zfs-fuse")
	if err != nil {
		return err
	}
	pidfile := filepath.Join(fuseStateDir, "daemon.pid")
	_ = os.Remove(pidfile)
	// --no-daemon keeps the daemon our child, so that we reap it when we stop it (PID 1 of a
	// container may not reap orphans). Its own session keeps it alive if this process exits
	// first while other processes still use it. Stdio is /dev/null: no pipe to wait on.
	cmd := exec.Command(path, "--no-daemon")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start zfs-fuse: %w", err)
	}
	go cmd.Wait()
	// With --no-daemon zfs-fuse writes no pidfile; ours records that testfs started it.
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := run("zpool", "list", "-H")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = stopZFSFuse()
			return fmt.Errorf("zfs-fuse (pid %d) started but does not answer: %w", cmd.Process.Pid, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopZFSFuse stops the daemon named by our pidfile, if it is a live zfs-fuse.
func stopZFSFuse() error {
	pidfile := filepath.Join(fuseStateDir, "daemon.pid")
	pid := readPID(pidfile)
	if pid <= 0 {
		return nil // not started by testfs
	}
	if processName(pid) != "zfs-fuse" {
		return os.Remove(pidfile)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stop zfs-fuse %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for processName(pid) == "zfs-fuse" {
		if time.Now().After(deadline) {
			_ = unix.Kill(pid, unix.SIGKILL)
			deadline = time.Now().Add(10 * time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := os.Remove(pidfile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func readPID(pidfile string) int {
	data, err := os.ReadFile(pidfile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0
	}
	return pid
}

// processName returns the command name of a live (not zombie) process, "" when there is none.
func processName(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// "pid (comm) state ..."; comm may hold spaces and parentheses.
	s := string(stat)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open || len(s) < close+3 {
		return ""
	}
	if s[close+2] == 'Z' || s[close+2] == 'X' {
		return ""
	}
	return s[open+1 : close]
}

// zfsFusePIDs lists the live zfs-fuse processes.
func zfsFusePIDs() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if processName(pid) == "zfs-fuse" {
			pids = append(pids, pid)
		}
	}
	return pids
}
