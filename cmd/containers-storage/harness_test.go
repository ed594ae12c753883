package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluggable-storage/storage/internal/testfs"
)

// The tests run the real binary: TestMain builds the CLI and the driver plugins into one
// directory (where the CLI looks for drivers by default) and every test runs commands against
// a temporary store.

// testVersion is the version the CLI under test is built with (-ldflags -X main.version=...).
const testVersion = "0.0.0-cli-test"

var (
	binDir string
	cliBin string
	// built lists the driver plugins that could be built (vfs must be).
	built = map[string]bool{}
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cs-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	cliBin = filepath.Join(dir, "containers-storage")
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if out, err := goBuild(root, cliBin, "./cmd/containers-storage", "-ldflags", "-X main.version="+testVersion); err != nil {
		fmt.Fprintf(os.Stderr, "building the CLI: %v\n%s", err, out)
		return 1
	}
	for _, d := range []string{"vfs", "overlay", "btrfs", "zfs"} {
		pkg := "./plugins/" + d
		if _, err := os.Stat(filepath.Join(root, "plugins", d, "main.go")); err != nil {
			continue
		}
		out, err := goBuild(root, filepath.Join(dir, "containers-storage-driver-"+d), pkg)
		if err != nil {
			if d == "vfs" {
				fmt.Fprintf(os.Stderr, "building the vfs driver: %v\n%s", err, out)
				return 1
			}
			fmt.Fprintf(os.Stderr, "note: driver %s not built, its cases are skipped: %v\n", d, err)
			continue
		}
		built[d] = true
	}
	// No test may pick up the machine's storage.conf or driver environment.
	emptyConf := filepath.Join(dir, "empty-storage.conf")
	if err := os.WriteFile(emptyConf, nil, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("CONTAINERS_STORAGE_CONF", emptyConf)
	os.Unsetenv("STORAGE_DRIVER")
	os.Unsetenv("STORAGE_OPTS")
	os.Unsetenv(driverPathEnv)
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the module")
	}
	return filepath.Dir(mod), nil
}

func goBuild(root, out, pkg string, flags ...string) ([]byte, error) {
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Dir = root
	return cmd.CombinedOutput()
}

// shutdownStoresUnder registers a cleanup that runs `shutdown` for every driver home mounted
// under dir (overlay and btrfs bind-mount their home onto itself when a store opens), so that
// t.TempDir can remove dir. Register it after creating dir: cleanups run last-in first-out.
func shutdownStoresUnder(t testing.TB, dir string) {
	t.Cleanup(func() {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Errorf("reading mountinfo: %v", err)
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 5 || !strings.HasPrefix(fields[4], dir+"/") {
				continue
			}
			home := fields[4]
			graph, driver := filepath.Dir(home), filepath.Base(home)
			run := filepath.Join(t.TempDir(), "run")
			for i := 0; i < 2; i++ {
				if r := runCLI(t, runOpts{}, "-g", graph, "-R", run, "-s", driver, "shutdown", "-f"); r.code == 0 {
					break
				}
			}
		}
	})
}

// result is what one CLI run produced.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runOpts are the rare knobs of a CLI run.
type runOpts struct {
	stdin string
	env   []string // added to the environment
	dir   string
}

// hangTimeout is the watchdog of one CLI run: a run still going after it is reported as hung
// (with the goroutine dump SIGQUIT makes Go print) instead of stalling the whole test binary.
const hangTimeout = time.Minute

// runCLI runs the binary with args, then checks that no driver plugin it started is still
// running.
func runCLI(t testing.TB, o runOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader(o.stdin)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Dir = o.dir
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		// The hung CLI died without closing its store: stop the plugins it left.
		for _, pid := range liveDrivers() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("%v hung (killed after %v):\n%v", args, hangTimeout, res)
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running %v: %v", args, err)
		}
		res.code = ee.ExitCode()
	}
	assertNoDrivers(t, args)
	return res
}

// liveDrivers returns the PIDs of running (not zombie) processes whose executable is one of
// the driver plugins built for this test binary.
func liveDrivers() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue // gone, a zombie, or a kernel thread
		}
		if filepath.Dir(exe) == binDir && strings.HasPrefix(filepath.Base(exe), "containers-storage-driver-") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func assertNoDrivers(t testing.TB, args []string) {
	t.Helper()
	if pids := liveDrivers(); len(pids) > 0 {
		t.Errorf("driver processes %v still running after %v", pids, args)
	}
}

// store is a temporary store used through the CLI with one driver.
type store struct {
	t           testing.TB
	graph, run  string
	driver      string
	driverOpts  []string
	globalAfter bool   // put the global flags after the command name
	storageOnly string // a layer made with create-storage-layer, for check
}

func newStore(t testing.TB, d driverCase) *store {
	t.Helper()
	graph, opts := d.setup(t)
	s := &store{t: t, graph: graph, run: filepath.Join(t.TempDir(), "run"), driver: d.name, driverOpts: opts}
	t.Cleanup(func() {
		// Undo mounts and the driver's home mount whatever the test did.
		r := s.cli("wipe")
		if r.code != 0 {
			t.Logf("cleanup wipe: %v", r)
		}
		for i := 0; i < 2; i++ {
			if r := s.cli("shutdown", "-f"); r.code == 0 {
				break
			}
		}
	})
	return s
}

func (s *store) globals() []string {
	g := []string{"-g", s.graph, "-R", s.run, "-s", s.driver}
	for _, o := range s.driverOpts {
		g = append(g, "--storage-opt", o)
	}
	return g
}

// args builds the command line: global flags, then the command and its arguments (or, with
// globalAfter, the command name, the global flags, then the rest).
func (s *store) args(args ...string) []string {
	if s.globalAfter && len(args) > 0 {
		return append(append([]string{args[0]}, s.globals()...), args[1:]...)
	}
	return append(s.globals(), args...)
}

func (s *store) cli(args ...string) result {
	s.t.Helper()
	return runCLI(s.t, runOpts{}, s.args(args...)...)
}

func (s *store) cliIn(stdin string, args ...string) result {
	s.t.Helper()
	return runCLI(s.t, runOpts{stdin: stdin}, s.args(args...)...)
}

// ok runs a command that must succeed with nothing on stderr, and returns its stdout.
func (s *store) ok(args ...string) string {
	s.t.Helper()
	r := s.cli(args...)
	if r.code != 0 || r.stderr != "" {
		s.t.Fatalf("%v: want success and empty stderr, got %v", args, r)
	}
	return r.stdout
}

// fails runs a command that must exit with code and print wantErr (a substring) on stderr.
func (s *store) fails(code int, wantErr string, args ...string) result {
	s.t.Helper()
	r := s.cli(args...)
	if r.code != code || !strings.Contains(r.stderr, wantErr) {
		s.t.Fatalf("%v: want exit %d and stderr containing %q, got %v", args, code, wantErr, r)
	}
	return r
}

// driverCase is one driver the command tests run with. setup returns the graph root to use and
// the driver options, or skips the test.
type driverCase struct {
	name  string
	setup func(t testing.TB) (graph string, opts []string)
}

// drivers lists the drivers to test: vfs always; overlay when its plugin was built and the
// kernel has overlay (as root); btrfs and zfs when their plugins were built and a prepared root
// is given (CS_TEST_BTRFS_ROOT, CS_TEST_ZFS_ROOT with CS_TEST_ZFS_DATASET) or testfs can make
// one.
func drivers() []driverCase {
	ds := []driverCase{{name: "vfs", setup: func(t testing.TB) (string, []string) { return t.TempDir(), nil }}}
	if built["overlay"] {
		ds = append(ds, driverCase{name: "overlay", setup: func(t testing.TB) (string, []string) {
			if os.Geteuid() != 0 {
				t.Skip("overlay needs root")
			}
			if b, _ := os.ReadFile("/proc/filesystems"); !bytes.Contains(b, []byte("\toverlay\n")) {
				t.Skip("the kernel has no overlay file system")
			}
			return t.TempDir(), nil
		}})
	}
	if built["btrfs"] {
		ds = append(ds, driverCase{name: "btrfs", setup: func(t testing.TB) (string, []string) {
			root := os.Getenv("CS_TEST_BTRFS_ROOT")
			if root == "" {
				root = testfs.Btrfs(t)
			}
			dir, err := os.MkdirTemp(root, "cs-cli-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir, nil
		}})
	}
	if built["zfs"] {
		ds = append(ds, driverCase{name: "zfs", setup: func(t testing.TB) (string, []string) {
			root, dataset := os.Getenv("CS_TEST_ZFS_ROOT"), os.Getenv("CS_TEST_ZFS_DATASET")
			if root == "" || dataset == "" {
				dataset, root = testfs.ZFS(t)
			}
			return root, []string{"zfs.fsname=" + dataset}
		}})
	}
	return ds
}

// vfsStore is a store with the vfs driver, for the tests that are about the CLI, not drivers.
func vfsStore(t testing.TB) *store { return newStore(t, drivers()[0]) }

// lines splits output into lines, without the final empty one.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func wantLines(t testing.TB, what, got string, want ...string) {
	t.Helper()
	g := lines(got)
	if len(g) != len(want) {
		t.Fatalf("%s: got %d lines %q, want %d lines %q", what, len(g), g, len(want), want)
	}
	for i := range want {
		if g[i] != want[i] {
			t.Fatalf("%s: line %d = %q, want %q (all: %q)", what, i+1, g[i], want[i], g)
		}
	}
}
