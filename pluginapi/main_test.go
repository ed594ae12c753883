package pluginapi_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/internal/testdriver"
)

// testdriverPath is the test driver plugin, built once by TestMain.
var testdriverPath string

// hostHelperEnv makes the test binary act as a host process: it launches the plugin named by the
// variable, initialises it with PLUGINAPI_TEST_HOME, prints "pid <plugin pid>" and waits to be
// killed. TestPluginExitsWhenHostDies uses it.
const hostHelperEnv = "PLUGINAPI_TEST_HOST_PLUGIN"

func TestMain(m *testing.M) {
	if path := os.Getenv(hostHelperEnv); path != "" {
		os.Exit(hostHelper(path))
	}
	dir, err := os.MkdirTemp("", "pluginapi-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testdriverPath = filepath.Join(dir, pluginapi.ExecutablePrefix+"test")
	out, err := exec.Command("go", "build", "-o", testdriverPath, "./internal/testdriver/plugin").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build test driver: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func hostHelper(path string) int {
	// The plugin's stdout must come out on the host's stderr: watch for the line the test driver
	// prints in Init before reporting the pid, passing everything on to the real stderr.
	realStderr := os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(realStderr, err)
		return 1
	}
	os.Stderr = w
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		once := sync.OnceFunc(func() { close(seen) })
		for sc.Scan() {
			fmt.Fprintln(realStderr, sc.Text())
			if strings.Contains(sc.Text(), "testdriver stdout noise") {
				once()
			}
		}
	}()
	c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: "test", Path: path})
	if err != nil {
		fmt.Fprintln(realStderr, err)
		return 1
	}
	if _, err := c.Init(context.Background(), pluginapi.InitOptions{Home: os.Getenv("PLUGINAPI_TEST_HOME")}); err != nil {
		fmt.Fprintln(realStderr, err)
		return 1
	}
	select {
	case <-seen:
	case <-time.After(20 * time.Second):
		fmt.Fprintln(realStderr, "host helper: the plugin's stdout never reached the host's stderr")
		return 1
	}
	fmt.Printf("pid %d\n", c.Pid())
	select {}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// backend opens an initialised test driver behind the plumbing.
type backend struct {
	name string
	open func(t *testing.T) pluginapi.Driver
}

var backends = []backend{
	{"in-process", openInProcess},
	{"subprocess", func(t *testing.T) pluginapi.Driver { return openClient(t) }},
}

func openInProcess(t *testing.T) pluginapi.Driver {
	t.Helper()
	td := testdriver.New("test", []int{pluginapi.APIVersion})
	td.InProcess = true
	d, stop, err := pluginapi.NewInProcess(td)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop harness: %v", err)
		}
	})
	if _, err := d.Init(context.Background(), pluginapi.InitOptions{Home: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	return d
}

func newClient(t *testing.T, logger hclog.Logger) *pluginapi.Client {
	t.Helper()
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: testWriter{t}})
	}
	c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: "test", Path: testdriverPath, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pid := c.Pid()
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
		if pid != 0 && processAlive(pid) {
			t.Errorf("plugin pid %d still running after Close", pid)
		}
	})
	return c
}

func openClient(t *testing.T) *pluginapi.Client {
	t.Helper()
	c := newClient(t, nil)
	if _, err := c.Init(context.Background(), pluginapi.InitOptions{Home: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	return c
}

// testWriter sends log output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// eventually polls cond every 10ms for up to 20s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}

// statusValue returns the driver's Status value for key.
func statusValue(t *testing.T, d pluginapi.Driver, key string) string {
	t.Helper()
	pairs, err := d.Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, p := range pairs {
		if p[0] == key {
			return p[1]
		}
	}
	t.Fatalf("status has no %q: %v", key, pairs)
	return ""
}

func TestPluginExitsWhenHostDies(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hostHelperEnv+"="+testdriverPath, "PLUGINAPI_TEST_HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("host helper printed nothing; stderr:\n%s", stderr.String())
	}
	line := sc.Text()
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
	if err != nil || pid <= 0 {
		t.Fatalf("host helper printed %q, want \"pid N\"; stderr:\n%s", line, stderr.String())
	}
	if !processAlive(pid) {
		t.Fatalf("plugin pid %d not running while its host is", pid)
	}
	defer func() {
		if processAlive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rest, _ := bufio.NewReader(stdout).ReadString(0)
	_ = cmd.Wait()
	eventually(t, fmt.Sprintf("plugin pid %d to exit after its host was killed", pid), func() bool { return !processAlive(pid) })

	// What the plugin printed on its stdout went to the host's stderr, never its stdout.
	if sc.Scan() || rest != "" {
		t.Errorf("host stdout has more than the pid line: %q %q", sc.Text(), rest)
	}
	if !strings.Contains(stderr.String(), "testdriver stdout noise") {
		t.Errorf("plugin stdout not forwarded to host stderr; host stderr:\n%s", stderr.String())
	}
}
