package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childDrivers returns the live driver plugins whose parent is pid.
func childDrivers(pid int) []int {
	var kids []int
	for _, d := range liveDrivers() {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, d)
		}
	}
	return kids
}

// TestSignalStopsDriver interrupts an import-layer that waits on its stdin, after its driver
// plugin has started: the CLI exits with 128+signal and the plugin is gone, and the
// half-created layer does not survive the next open.
func TestSignalStopsDriver(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			s := vfsStore(t)
			cmd := exec.Command(cliBin, s.args("import-layer", "-n", "interrupted")...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := false
			defer func() {
				if !waited {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			// Wait (bounded) for the driver plugin to be running under the CLI.
			deadline := time.Now().Add(hangTimeout)
			for len(childDrivers(cmd.Process.Pid)) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the driver plugin never started")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			waited = true
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("after %v: %v, want exit code %d", tc.sig, err, tc.code)
			}
			assertNoDrivers(t, cmd.Args)
			if out := s.ok("layers"); strings.Contains(out, "interrupted") {
				t.Fatalf("the interrupted layer survived: %q", out)
			}
		})
	}
}

// TestClosedStdoutStopsDriver: a reader that goes away (a closed pipe) must not leave the
// driver plugin behind.
func TestClosedStdoutStopsDriver(t *testing.T) {
	s := vfsStore(t)
	data := tarOf(t, [2]string{"big", strings.Repeat("x", 1<<20)})
	s.ok("import-layer", "-n", "big", "-f", writeFile(t, t.TempDir(), "big.tar", data))
	cmd := exec.Command(cliBin, s.args("diff", "big")...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	buf := make([]byte, 512)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	r.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("diff into a closed pipe: %v, want exit code 1", err)
	}
	assertNoDrivers(t, cmd.Args)
}
