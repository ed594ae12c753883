package conformance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// buildDirPrefix names the per-process directories BuildDriver builds into, under os.TempDir():
// <prefix><pid>. A directory whose process is gone is deleted by the next BuildDriver.
const buildDirPrefix = "containers-storage-conformance-bin-"

var builds sync.Map // driver name -> *build

type build struct {
	once sync.Once
	path string
	err  error
}

// BuildDriver builds the in-tree driver ./plugins/<name> of the module holding the test's working
// directory, once per test binary, and returns the executable's path
// (containers-storage-driver-<name>). It fails t if the build fails.
//
// The executables live in a directory named after this process under os.TempDir(). A test
// binary's TestMain removes it with RemoveBuilds after m.Run; in case it did not (a crash, a
// binary without that TestMain), each BuildDriver first deletes the directories of processes that
// no longer run.
func BuildDriver(t testing.TB, name string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(name, &build{})
	b := v.(*build)
	b.once.Do(func() { b.path, b.err = buildDriver(name) })
	if b.err != nil {
		t.Fatalf("build driver %s: %v", name, b.err)
	}
	return b.path
}

// RemoveBuilds deletes the executables BuildDriver built in this process. Call it from TestMain
// after m.Run; BuildDriver must not be called afterwards.
func RemoveBuilds() error {
	return os.RemoveAll(buildDir())
}

func buildDir() string {
	return filepath.Join(os.TempDir(), buildDirPrefix+strconv.Itoa(os.Getpid()))
}

func buildDriver(name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	sweepBuildDirs()
	dir := buildDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "containers-storage-driver-"+name)
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	}
	cmd := exec.Command(goTool, "build", "-o", out, "./plugins/"+name)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./plugins/%s in %s: %w\n%s", name, root, err, msg)
	}
	return out, nil
}

// moduleRoot is the nearest directory at or above the working directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// sweepBuildDirs deletes the build directories of processes that have exited.
func sweepBuildDirs() {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		pidStr, ok := strings.CutPrefix(e.Name(), buildDirPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}
