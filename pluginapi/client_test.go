package pluginapi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/internal/testdriver"
)

func TestClientStartsOnlyWhenNeeded(t *testing.T) {
	c := newClient(t, nil)
	if c.Started() || c.Pid() != 0 {
		t.Fatalf("NewClient started a plugin (Started %v, pid %d)", c.Started(), c.Pid())
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "test" || len(info.APIVersions) != 1 || info.APIVersions[0] != pluginapi.APIVersion {
		t.Fatalf("Info = %+v", info)
	}
	if !c.Started() || c.Pid() == 0 {
		t.Fatalf("after Info: Started %v, pid %d; want a running plugin", c.Started(), c.Pid())
	}
}

func TestCloseLeavesNoProcess(t *testing.T) {
	c := newClient(t, nil)
	ctx := context.Background()
	if _, err := c.Init(ctx, pluginapi.InitOptions{Home: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	pid := c.Pid()
	if !processAlive(pid) {
		t.Fatalf("plugin pid %d not running", pid)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Fatalf("plugin pid %d still running after Close returned", pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Fatalf("plugin pid %d left as a zombie after Close", pid)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.ListLayers(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("call after Close = %v, want ErrUnavailable", err)
	}
}

func TestPluginKilledDuringCall(t *testing.T) {
	c := openClient(t)
	ctx := context.Background()
	if err := c.Create(ctx, "before", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	pid := c.Pid()
	errc := make(chan error, 1)
	go func() { errc <- c.Create(ctx, "sleep-k", "", pluginapi.CreateOpts{}) }()
	eventually(t, "the call to reach the driver", func() bool { return statusValue(t, c, "Sleeping") == "1" })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if !errors.Is(err, pluginapi.ErrPluginDied) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Create on a killed plugin = %v, want ErrPluginDied", err)
	}
	for _, want := range []string{`driver "test"`, "create layer sleep-k", "signal: killed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The next call relaunches and replays Init (without it the driver has no home).
	ok, err := c.Exists(ctx, "before")
	if err != nil || !ok {
		t.Fatalf("Exists(before) on the relaunched plugin = %v, %v; want true (Init replayed)", ok, err)
	}
	if np := c.Pid(); np == pid || np == 0 {
		t.Fatalf("pid after relaunch %d, before %d", np, pid)
	}
}

func TestPluginDiesBetweenAndDuringCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(t *testing.T, c *pluginapi.Client) error // returns the error of the call that died, if any
		want string                                        // in that error
	}{
		{"SIGKILL between calls", func(t *testing.T, c *pluginapi.Client) error {
			pid := c.Pid()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the plugin to die", func() bool { return !processAlive(pid) })
			return nil
		}, ""},
		{"exit inside a call", func(t *testing.T, c *pluginapi.Client) error {
			return c.Create(context.Background(), "exit-now", "", pluginapi.CreateOpts{})
		}, "exit status 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openClient(t)
			ctx := context.Background()
			if err := c.Create(ctx, "kept", "", pluginapi.CreateOpts{}); err != nil {
				t.Fatal(err)
			}
			pid := c.Pid()
			err := tc.kill(t, c)
			if tc.want != "" && (!errors.Is(err, pluginapi.ErrPluginDied) || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("call that killed the plugin = %v, want ErrPluginDied with %q", err, tc.want)
			}
			// An idempotent call just works: relaunched (and retried if it met the corpse).
			ids, err := c.ListLayers(ctx)
			if err != nil || len(ids) != 1 || ids[0] != "kept" {
				t.Fatalf("ListLayers after the plugin died = %v, %v; want [kept]", ids, err)
			}
			if np := c.Pid(); np == pid || np == 0 {
				t.Fatalf("pid after relaunch %d, before %d", np, pid)
			}
		})
	}
}

func TestLaunchErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		path      string
		env       map[string]string
		atNew     bool     // the error comes from NewClient (nothing started)
		class     error    // of the error
		mentioned []string // in the error text
	}{
		{"missing executable", filepath.Join(dir, "nope"), nil, true, errdefs.ErrNotFound,
			[]string{`driver "test"`, filepath.Join(dir, "nope")}},
		{"not executable", notExec, nil, true, errdefs.ErrInvalidArgument,
			[]string{`driver "test"`, notExec, "not executable"}},
		{"a directory", dir, nil, true, errdefs.ErrInvalidArgument,
			[]string{`driver "test"`, dir}},
		{"exits at start", testdriverPath, map[string]string{"TESTDRIVER_EXIT_AT_START": "3"}, false, errdefs.ErrUnavailable,
			[]string{`driver "test"`, testdriverPath, "exit status 3"}},
		{"not a plugin", garbage, nil, false, errdefs.ErrUnavailable,
			[]string{`driver "test"`, garbage, "hello"}},
		{"other protocol version", testdriverPath, map[string]string{"TESTDRIVER_PROTOCOL": "2"}, false, errdefs.ErrInvalidArgument,
			[]string{`driver "test"`, testdriverPath, "Plugin version: 2", fmt.Sprintf("Client versions: [%d]", pluginapi.APIVersion)}},
		{"other driver name", testdriverPath, map[string]string{"TESTDRIVER_NAME": "other"}, false, errdefs.ErrInvalidArgument,
			[]string{`driver "test"`, testdriverPath, `"other"`}},
		{"other API versions", testdriverPath, map[string]string{"TESTDRIVER_API_VERSIONS": "7,8"}, false, errdefs.ErrInvalidArgument,
			[]string{`driver "test"`, testdriverPath, "[7 8]", fmt.Sprintf("version %d", pluginapi.APIVersion)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: "test", Path: tc.path,
				Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Off})})
			if err == nil {
				if tc.atNew {
					t.Fatalf("NewClient succeeded, want %v", tc.class)
				}
				defer c.Close()
				_, err = c.Info(context.Background())
				if c.Pid() != 0 {
					t.Fatalf("a plugin that failed to launch is running as pid %d", c.Pid())
				}
			} else if !tc.atNew {
				t.Fatalf("NewClient: %v", err)
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %v, want class %v", err, tc.class)
			}
			for _, m := range tc.mentioned {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestPluginLogsUnderDriverName(t *testing.T) {
	var buf syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Info, Output: &buf})
	c := newClient(t, logger)
	home := t.TempDir()
	if _, err := c.Init(context.Background(), pluginapi.InitOptions{Home: home}); err != nil {
		t.Fatal(err)
	}
	// go-plugin re-emits the fields in no fixed order.
	found := func() bool {
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.Contains(line, "[INFO]  host.test: testdriver init:") && strings.Contains(line, "home="+home) {
				return true
			}
		}
		return false
	}
	eventually(t, "the plugin's log line under host.test", found)
}

func TestClientConcurrentCalls(t *testing.T) {
	c := openClient(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("layer-%d", i)
			layerErr := func() error {
				if err := c.Create(ctx, id, "", pluginapi.CreateOpts{}); err != nil {
					return err
				}
				if _, err := c.ApplyDiff(ctx, id, "", strings.NewReader(string(makeTar(t, []tarFile{{"f", random(t, 300_000)}})))); err != nil {
					return err
				}
				if ok, err := c.Exists(ctx, id); err != nil || !ok {
					return fmt.Errorf("exists %s: %v %v", id, ok, err)
				}
				size, err := c.DiffSize(ctx, id, "")
				if err != nil || size != 300_000 {
					return fmt.Errorf("diff size %s: %d %v", id, size, err)
				}
				return nil
			}()
			errs <- layerErr
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestHarnessStopEndsCalls(t *testing.T) {
	td := testdriver.New("test", []int{pluginapi.APIVersion})
	td.InProcess = true
	d, stop, err := pluginapi.NewInProcess(td)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Info(context.Background()); !errors.Is(err, pluginapi.ErrPluginDied) {
		t.Fatalf("call after stop = %v, want ErrPluginDied", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestFindExecutable(t *testing.T) {
	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	name := pluginapi.ExecutablePrefix + "x"
	if err := os.WriteFile(filepath.Join(dirB, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirC, name), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		exeDir = filepath.Dir(exe)
	}
	for _, tc := range []struct {
		name      string
		driver    string
		path      string
		dirs      []string
		want      string
		class     error
		mentioned []string
	}{
		{"first dir with it wins", "x", "", []string{dirA, dirB, dirC}, filepath.Join(dirB, name), nil, nil},
		{"explicit path", "x", filepath.Join(dirB, name), []string{dirC}, filepath.Join(dirB, name), nil, nil},
		{"not found anywhere", "x", "", []string{dirA}, "", errdefs.ErrNotFound,
			[]string{`driver "x"`, filepath.Join(dirA, name), filepath.Join(exeDir, name)}},
		{"found but not executable", "x", "", []string{dirA, dirC, dirB}, "", errdefs.ErrInvalidArgument,
			[]string{`driver "x"`, filepath.Join(dirC, name)}},
		{"explicit path missing", "x", filepath.Join(dirA, "nope"), nil, "", errdefs.ErrNotFound,
			[]string{`driver "x"`, filepath.Join(dirA, "nope")}},
		{"bad driver name", "../x", "", []string{dirB}, "", errdefs.ErrInvalidArgument, []string{"../x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pluginapi.FindExecutable(tc.driver, tc.path, tc.dirs)
			if tc.class == nil {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("got %q, %v; want class %v", got, err, tc.class)
			}
			for _, m := range tc.mentioned {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestPluginRunByHand(t *testing.T) {
	cmd := exec.Command(testdriverPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("plugin run by hand: %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "This binary is a plugin") || stdout.Len() != 0 {
		t.Fatalf("plugin run by hand printed stdout %q, stderr %q; want an explanation on stderr only", stdout.String(), stderr.String())
	}
}

func TestRelaunchReplaysTheInitThatWorked(t *testing.T) {
	c := newClient(t, nil)
	ctx := context.Background()
	home := t.TempDir()
	if _, err := c.Init(ctx, pluginapi.InitOptions{Home: home, Options: []string{"test.no_such_option=1"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Init with an unknown option = %v, want ErrInvalidArgument", err)
	}
	if _, err := c.Init(ctx, pluginapi.InitOptions{Home: home}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, "kept", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	pid := c.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Exists(ctx, "kept"); err != nil || !ok {
		t.Fatalf("Exists after relaunch = %v, %v; want true (the good Init replayed)", ok, err)
	}
	if got := statusValue(t, c, "Home"); got != home {
		t.Fatalf("relaunched plugin's home %q, want %q", got, home)
	}
}
