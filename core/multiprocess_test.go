package core

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluggable-storage/storage/pluginapi"
)

// runChild is the body of a re-executed test binary. CORE_TEST_DIR is the store's parent dir.
func runChild(role string) int {
	opts := testOptions(os.Getenv("CORE_TEST_DIR"))
	opts.PluginDirs = []string{os.Getenv("CORE_TEST_PLUGINS")}
	ctx := context.Background()
	switch role {
	case "race":
		// Wait for the go signal so that every racer opens and creates at the same moment.
		start := os.Getenv("CORE_TEST_START")
		for {
			if _, err := os.Stat(start); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		s, err := Open(ctx, opts)
		if err != nil {
			fmt.Println("error", err)
			return 2
		}
		defer s.Close()
		img, err := s.CreateImage(ctx, ImageOptions{Names: []string{"racer"}})
		switch {
		case err == nil:
			fmt.Println("won", img.ID)
		case errors.Is(err, ErrDuplicateName):
			fmt.Println("lost", err)
		default:
			fmt.Println("error", err)
			return 2
		}
		return 0
	case "slowapply":
		s, err := Open(ctx, opts)
		if err != nil {
			fmt.Println("error", err)
			return 2
		}
		_, err = s.CreateLayer(ctx, LayerOptions{Names: []string{"doomed"}}, &slowTar{onFirst: func() {
			fmt.Printf("applying %d\n", s.client.Pid())
		}})
		fmt.Println("error: apply finished", err)
		return 2
	}
	return 3
}

// slowTar is a tar whose one file's content never finishes arriving: it gives a header and
// some content, announces itself once, then blocks.
type slowTar struct {
	onFirst func()
	// keepGoing: after onFirst, serve zeros (the rest of the big file) instead of blocking.
	keepGoing bool
	sent      bool
	head      []byte
}

func (s *slowTar) Read(p []byte) (int, error) {
	if s.head == nil {
		var hb strings.Builder
		tw := tar.NewWriter(&hb)
		tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: 1 << 30, Typeflag: tar.TypeReg})
		tw.Flush()
		s.head = append([]byte(hb.String()), make([]byte, 64<<10)...)
	}
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	if !s.sent {
		s.sent = true
		s.onFirst()
	}
	if s.keepGoing {
		clear(p)
		return len(p), nil
	}
	select {} // block until killed
}

func childCmd(t *testing.T, role, dir string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CORE_TEST_CHILD="+role, "CORE_TEST_DIR="+dir, "CORE_TEST_PLUGINS="+pluginDir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// Two processes (four here) racing to create an image with the same name: exactly one wins,
// the others fail with ErrDuplicateName, and the store holds one image.
func TestRaceCreateSameNameAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	s := openWith(t, testOptions(dir)) // creates the store
	start := filepath.Join(dir, "go")
	const racers = 4
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < racers; i++ {
		cmd := childCmd(t, "race", dir, "CORE_TEST_START="+start)
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	time.Sleep(100 * time.Millisecond)
	os.WriteFile(start, nil, 0o600)
	won, lost := 0, 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("racer %d: %v: %s", i, err, outs[i])
		}
		switch o := outs[i].String(); {
		case strings.HasPrefix(o, "won"):
			won++
		case strings.HasPrefix(o, "lost") && strings.Contains(o, "that name is already in use"):
			lost++
		default:
			t.Errorf("racer %d: unexpected output %q", i, o)
		}
	}
	if won != 1 || lost != racers-1 {
		t.Fatalf("won=%d lost=%d, want 1 and %d", won, lost, racers-1)
	}
	imgs, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].Names) != 1 || imgs[0].Names[0] != "racer" {
		t.Fatalf("images after race: %+v", imgs)
	}
}

// A process SIGKILLed while applying a layer leaves an incomplete record; the next RW open
// removes it and the driver layer, and nothing else is left behind.
func TestSIGKILLDuringApplyLeavesCleanStore(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir)
	s := openWith(t, opts)
	base, err := s.CreateLayer(context.Background(), LayerOptions{Names: []string{"base"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	cmd := childCmd(t, "slowapply", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "applying ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q %v", line, err)
	}
	pluginPid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "applying ")))
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if pluginPid > 0 {
		// The orphaned plugin may outlive its host for a moment: stop it by PID.
		syscall.Kill(pluginPid, syscall.SIGKILL)
		waitGone(pluginPid)
	}

	// The kill happened mid-apply: the record is there, flagged incomplete.
	raw, err := os.ReadFile(filepath.Join(opts.GraphRoot, "vfs-layers", "layers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1]["flags"] == nil {
		t.Fatalf("want base plus an incomplete layer on disk, got %s", raw)
	}
	doomed := recs[1]["id"].(string)
	if _, err := os.Stat(filepath.Join(opts.GraphRoot, "vfs", "dir", doomed)); err != nil {
		t.Fatalf("driver layer of the killed apply should exist before recovery: %v", err)
	}

	s2 := openWith(t, opts)
	layers, err := s2.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 || layers[0].ID != base.ID {
		t.Fatalf("layers after recovery: %+v", layers)
	}
	ids, err := s2.StorageLayers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != base.ID {
		t.Fatalf("driver layers after recovery: %v, want only %s", ids, base.ID)
	}
	for _, p := range []string{doomed + ".tar-split.gz", doomed + ".tar-split.gz.tmp"} {
		if _, err := os.Stat(filepath.Join(opts.GraphRoot, "vfs-layers", p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if _, err := s2.Layer("doomed"); !errors.Is(err, ErrLayerUnknown) {
		t.Errorf("name of the killed layer still resolves: %v", err)
	}
	// The name is free again.
	if _, err := s2.CreateLayer(context.Background(), LayerOptions{Names: []string{"doomed"}}, io.LimitReader(nil, 0)); err != nil {
		t.Fatal(err)
	}
}

func waitGone(pid int) {
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The driver plugin dying in the middle of an apply: the error names the driver and says the
// plugin died; the half-made layer is rolled back through a relaunched plugin.
func TestPluginDeathDuringApplyIsNamedAndRolledBack(t *testing.T) {
	s, _ := openStore(t)
	base, err := s.CreateLayer(context.Background(), LayerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := s.client.Pid()
	_, err = s.CreateLayer(context.Background(), LayerOptions{Names: []string{"victim"}}, &slowTar{keepGoing: true, onFirst: func() {
		syscall.Kill(pid, syscall.SIGKILL)
	}})
	if !errors.Is(err, pluginapi.ErrPluginDied) || !strings.Contains(err.Error(), "vfs") {
		t.Fatalf("got %v, want a plugin-died error naming vfs", err)
	}
	t.Log(err)
	layers, err := s.Layers()
	if err != nil || len(layers) != 1 || layers[0].ID != base.ID {
		t.Fatalf("layers after the death: %+v %v", layers, err)
	}
	ids, err := s.StorageLayers(context.Background())
	if err != nil || len(ids) != 1 || ids[0] != base.ID {
		t.Fatalf("driver layers after the death: %v %v", ids, err)
	}
	if s.client.Pid() == pid {
		t.Fatal("plugin was not relaunched")
	}
}
