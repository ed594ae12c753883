package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRootless runs the CLI as an unprivileged user: by default (--unshare defaults to true
// when rootless) it re-executes itself in a user namespace where it is root, both for store
// commands and for `unshare`; --unshare=false stays outside.
func TestRootless(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching to an unprivileged user needs root")
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err != nil || strings.TrimSpace(string(b)) == "0" {
		t.Skip("user namespaces are disabled")
	}
	const nobody = 65534
	// The unprivileged user must reach the binaries and own nothing it cannot write.
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	store := []string{"-g", filepath.Join(dir, "g"), "-R", filepath.Join(dir, "r"), "-s", "vfs"}
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(cliBin, append(append([]string(nil), store...), args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		assertNoDrivers(t, args)
		return stdout.String(), stderr.String(), err
	}

	out, errOut, err := run("unshare", "sh", "-c", "id -u; cat /proc/self/uid_map")
	if err != nil || errOut != "" {
		t.Fatalf("unshare: %v %q", err, errOut)
	}
	got := lines(out)
	if len(got) != 2 || got[0] != "0" || strings.Join(strings.Fields(got[1]), " ") != "0 65534 1" {
		t.Fatalf("unshare as nobody: %q, want uid 0 mapped to 65534", got)
	}
	out, errOut, err = run("create-layer", "-n", "rootless")
	if err != nil || errOut != "" || !hexID.MatchString(lines(out)[0]) {
		t.Fatalf("create-layer as nobody: %v %q %q", err, out, errOut)
	}
	id := lines(out)[0]
	// The layer directory belongs to nobody on the host.
	st, err := os.Stat(filepath.Join(dir, "g", "vfs", "dir", id))
	if err != nil || !ownedBy(st, nobody, nobody) {
		t.Fatalf("layer directory: %v %v, want owned by %d", st, err, nobody)
	}
	out, errOut, err = run("--unshare=false", "layers")
	if err != nil || errOut != "" {
		t.Fatalf("layers --unshare=false: %v %q", err, errOut)
	}
	wantLines(t, "layers", out, id, "\tname: rootless")
	if _, _, err := run("wipe"); err != nil {
		t.Fatalf("wipe: %v", err)
	}
}
