package lockfile

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pluggable-storage/storage/errdefs"
)

// The tests contend for locks with a second process: the test binary re-executed as a helper.
// The helper opens LOCKFILE_HELPER_PATH and runs the steps given as arguments, printing one line
// per step when it has finished it, so the parent can follow it step by step:
//
//	lock, rlock, unlock      -> "lock", "rlock", "unlock"
//	trylock                  -> "trylock ok" or "trylock inuse"
//	write                    -> "write <token hex>"
//	modified                 -> "modified true|false"
//	wait                     -> reads one line from stdin, then "wait"
const helperEnv = "LOCKFILE_HELPER_PATH"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(runHelper(path, os.Getenv("LOCKFILE_HELPER_RO") == "1", os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runHelper(path string, readOnly bool, steps []string) int {
	l, err := Open(path, readOnly)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	in := bufio.NewReader(os.Stdin)
	for _, step := range steps {
		switch step {
		case "lock":
			l.Lock()
			fmt.Println("lock")
		case "rlock":
			l.RLock()
			fmt.Println("rlock")
		case "unlock":
			l.Unlock()
			fmt.Println("unlock")
		case "trylock":
			switch err := l.TryLock(); {
			case err == nil:
				fmt.Println("trylock ok")
			case errors.Is(err, errdefs.ErrInUse):
				fmt.Println("trylock inuse")
			default:
				fmt.Fprintln(os.Stderr, "helper:", err)
				return 2
			}
		case "write":
			if err := l.RecordWrite(); err != nil {
				fmt.Fprintln(os.Stderr, "helper:", err)
				return 2
			}
			fmt.Println("write", hex.EncodeToString(l.seen))
		case "modified":
			m, err := l.Modified()
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper:", err)
				return 2
			}
			fmt.Println("modified", m)
		case "wait":
			if _, err := in.ReadString('\n'); err != nil && err != io.EOF {
				return 2
			}
			fmt.Println("wait")
		default:
			fmt.Fprintln(os.Stderr, "helper: unknown step", step)
			return 2
		}
	}
	return 0
}

// helper is a running helper process.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startHelper starts a helper process on path running steps.
func startHelper(t *testing.T, path string, readOnly bool, steps ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], steps...)
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	if os.Getenv("GORACE") == "" {
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0") // a race-enabled helper exits at once
	}
	if readOnly {
		cmd.Env = append(cmd.Env, "LOCKFILE_HELPER_RO=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		// Stop a helper a failed test left waiting (by its PID), and reap it.
		if h.cmd.ProcessState == nil {
			_ = h.cmd.Process.Kill()
			_ = h.cmd.Wait()
		}
	})
	return h
}

// next returns the helper's next line. The timeout only turns a hang into a failure.
func (h *helper) next() string {
	h.t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper %d exited early", h.cmd.Process.Pid)
		}
		return line
	case <-time.After(30 * time.Second):
		h.t.Fatalf("helper %d: no output", h.cmd.Process.Pid)
		return ""
	}
}

// expect reads the next line and fails unless it is want.
func (h *helper) expect(want string) {
	h.t.Helper()
	if got := h.next(); got != want {
		h.t.Fatalf("helper said %q, want %q", got, want)
	}
}

// proceed lets a helper blocked in a "wait" step go on.
func (h *helper) proceed() {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		h.t.Fatal(err)
	}
}

// wait waits for the helper to exit successfully.
func (h *helper) wait() {
	h.t.Helper()
	for range h.lines {
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		h.t.Fatalf("helper: %v", err)
	}
}

// tryFromOtherProcess runs a helper that tries the exclusive lock and reports the outcome.
func tryFromOtherProcess(t *testing.T, path string) string {
	t.Helper()
	h := startHelper(t, path, false, "trylock")
	out := h.next()
	h.wait()
	return strings.TrimPrefix(out, "trylock ")
}
