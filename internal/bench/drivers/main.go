// Command drivers compares the in-tree drivers side by side, each through its real plugin
// executable: apply and diff throughput for a layer of many small files, and the latency of a
// mount/unmount pair (Get then Put) of a layer with 1 and with 128 lowers. `make bench` runs it.
//
// Each driver gets a fresh home under -dir; point -dir at tmpfs (the default, /dev/shm) to measure
// the drivers rather than a noisy disk, or at a disk directory to include it.
package main

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pluggable-storage/storage/pluginapi"
)

func main() {
	drivers := flag.String("drivers", "vfs,overlay", "comma-separated drivers to compare")
	size := flag.Int64("size-mib", 1024, "layer size in MiB for the throughput figures")
	fileKiB := flag.Int64("file-kib", 16, "size of each file of the layer, in KiB")
	lowers := flag.String("lowers", "1,128", "chain depths for the mount latency figures")
	mounts := flag.Int("mounts", 20, "Get/Put pairs timed per depth")
	binDir := flag.String("bin", "bin", "directory holding containers-storage-driver-<name>")
	dir := flag.String("dir", "/dev/shm", "where to make the scratch driver homes")
	flag.Parse()

	var depths []int
	for _, s := range strings.Split(*lowers, ",") {
		n, err := strconv.Atoi(s)
		check(err)
		depths = append(depths, n)
	}
	fmt.Printf("drivers through their plugins: layer of %d MiB in %d KiB files; Get+Put of the top of a chain, %d times\n",
		*size, *fileKiB, *mounts)
	header := fmt.Sprintf("%-8s %12s %12s", "driver", "apply MiB/s", "diff MiB/s")
	for _, d := range depths {
		header += fmt.Sprintf(" %16s", fmt.Sprintf("mount %d lower ms", d))
	}
	fmt.Println(header)
	for _, name := range strings.Split(*drivers, ",") {
		scratch, err := os.MkdirTemp(*dir, "bench-"+name+"-")
		check(err)
		row, err := benchDriver(name, *binDir, scratch, *size<<20, *fileKiB<<10, depths, *mounts)
		os.RemoveAll(scratch)
		if err != nil {
			fmt.Printf("%-8s skipped: %v\n", name, err)
			continue
		}
		fmt.Println(row)
	}
}

func benchDriver(name, binDir, scratch string, size, fileSize int64, depths []int, mounts int) (string, error) {
	ctx := context.Background()
	exe, err := filepath.Abs(filepath.Join(binDir, "containers-storage-driver-"+name))
	if err != nil {
		return "", err
	}
	c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: name, Path: exe})
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Init(ctx, pluginapi.InitOptions{
		Home: filepath.Join(scratch, "home"), RunHome: filepath.Join(scratch, "run"),
		GraphRoot: scratch, RunRoot: filepath.Join(scratch, "runroot"),
	}); err != nil {
		return "", err
	}
	defer c.Cleanup(ctx)

	if err := c.Create(ctx, "big", "", pluginapi.CreateOpts{}); err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayer(pw, "f", size, fileSize)) }()
	start := time.Now()
	if _, err := c.ApplyDiff(ctx, "big", "", pr); err != nil {
		return "", fmt.Errorf("apply: %w", err)
	}
	apply := time.Since(start)
	start = time.Now()
	rc, err := c.Diff(ctx, "big", "")
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	diff := time.Since(start)
	if err := c.Remove(ctx, "big"); err != nil {
		return "", err
	}
	mib := float64(size) / (1 << 20)
	row := fmt.Sprintf("%-8s %12.0f %12.0f", name, mib/apply.Seconds(), mib/diff.Seconds())

	// A chain whose top layer has d lowers: d+1 layers, one small file each.
	built, parent := 0, ""
	for _, d := range depths {
		for ; built <= d; built++ {
			id := fmt.Sprintf("chain-%03d", built)
			if err := c.Create(ctx, id, parent, pluginapi.CreateOpts{}); err != nil {
				return "", err
			}
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writeLayer(pw, id, 4096, 4096)) }()
			if _, err := c.ApplyDiff(ctx, id, parent, pr); err != nil {
				return "", err
			}
			parent = id
		}
		times := make([]time.Duration, 0, mounts)
		for i := 0; i < mounts; i++ {
			start := time.Now()
			if _, err := c.Get(ctx, parent, pluginapi.MountOpts{}); err != nil {
				return "", fmt.Errorf("mount %s: %w", parent, err)
			}
			if err := c.Put(ctx, parent); err != nil {
				return "", fmt.Errorf("unmount %s: %w", parent, err)
			}
			times = append(times, time.Since(start))
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		row += fmt.Sprintf(" %16.2f", float64(times[len(times)/2].Microseconds())/1000)
	}
	for i := built - 1; i >= 0; i-- {
		if err := c.Remove(ctx, fmt.Sprintf("chain-%03d", i)); err != nil {
			return "", err
		}
	}
	return row, nil
}

// writeLayer writes a tar of size bytes of file content in files of fileSize bytes, 256 to a
// directory, with names starting with prefix.
func writeLayer(w io.Writer, prefix string, size, fileSize int64) error {
	tw := tar.NewWriter(w)
	content := make([]byte, fileSize)
	for i := range content {
		content[i] = byte(i * 7)
	}
	mtime := time.Unix(1700000000, 0)
	for i := int64(0); i*fileSize < size; i++ {
		if i%256 == 0 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s-d%05d/", prefix, i/256), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}); err != nil {
				return err
			}
		}
		content[0], content[1] = byte(i), byte(i>>8)
		hdr := &tar.Header{Name: fmt.Sprintf("%s-d%05d/f%03d", prefix, i/256, i%256), Typeflag: tar.TypeReg, Mode: 0o644, Size: fileSize, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(content); err != nil {
			return err
		}
	}
	return tw.Close()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "drivers:", err)
		os.Exit(1)
	}
}
