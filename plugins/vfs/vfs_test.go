package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pluggable-storage/storage/conformance"
	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/vfs/vfsdriver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := conformance.RemoveBuilds(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// TestConformance runs the driver suite against the real plugin executable and against the
// driver served over in-process gRPC.
func TestConformance(t *testing.T) {
	t.Run("Plugin", func(t *testing.T) {
		conformance.Run(t, conformance.Config{Driver: vfsdriver.Name, Executable: conformance.BuildDriver(t, "vfs")})
	})
	t.Run("InProcess", func(t *testing.T) {
		conformance.Run(t, conformance.Config{Driver: vfsdriver.Name, New: func() pluginapi.Driver { return vfsdriver.New() }})
	})
}

// TestKilledMidCreateLeavesNoLayer: SIGKILL of the plugin while Create copies the parent leaves
// no layer under its ID, and the relaunched plugin's Init deletes the half-copied staging
// directory.
func TestKilledMidCreateLeavesNoLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, like the driver")
	}
	exe := conformance.BuildDriver(t, "vfs")
	root := t.TempDir()
	home := filepath.Join(root, "vfs")
	c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: vfsdriver.Name, Path: exe})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	if _, err := c.Init(ctx, pluginapi.InitOptions{Home: home, RunHome: filepath.Join(t.TempDir(), "vfs"), GraphRoot: root}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, "big-parent", "", pluginapi.CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	parentDir, err := c.Get(ctx, "big-parent", pluginapi.MountOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// Enough small files that the copy is still running when the test sees its staging dir.
	for i := range 20 {
		dir := filepath.Join(parentDir, fmt.Sprintf("d%02d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 50 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", j)), []byte("data"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	staging := filepath.Join(home, "staging")
	done := make(chan error, 1)
	go func() { done <- c.Create(ctx, "victim", "big-parent", pluginapi.CreateOpts{}) }()
	killed := false
	for !killed {
		select {
		case err := <-done:
			t.Skipf("Create finished (%v) before the test saw it copying; nothing to kill", err)
		default:
		}
		if entries, _ := os.ReadDir(staging); len(entries) > 0 {
			if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if err := <-done; !errors.Is(err, pluginapi.ErrPluginDied) {
		t.Fatalf("Create in flight when the plugin was killed = %v, want ErrPluginDied", err)
	}
	if _, err := os.Lstat(filepath.Join(home, "dir", "victim")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dir/victim after the plugin died mid-Create: %v", err)
	}
	if entries, err := os.ReadDir(staging); err != nil || len(entries) != 1 {
		t.Fatalf("staging/ holds %v (%v) right after the kill; want the dead Create's holder", entries, err)
	}
	if ok, err := c.Exists(ctx, "victim"); err != nil || ok {
		t.Fatalf("Exists(victim) after relaunch = %v, %v; want false, nil", ok, err)
	}
	if entries, err := os.ReadDir(staging); err != nil || len(entries) != 0 {
		t.Fatalf("staging/ holds %v (%v) after the relaunched plugin's Init", entries, err)
	}
	if err := c.Create(ctx, "victim", "big-parent", pluginapi.CreateOpts{}); err != nil {
		t.Fatalf("Create of the same ID after the crash: %v", err)
	}
}
