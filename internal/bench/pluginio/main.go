// Command pluginio measures what the plugin boundary costs when a layer's contents move through it.
//
// For one driver (-driver vfs or overlay) it applies a generated layer tar of -size bytes and then
// reads the layer's diff back, twice over: once calling the driver's code in this process, once
// through the real driver executable (pluginapi.Client: gRPC calls, the tar through the
// shared-memory stream the plugin is handed, framed with a trailer). Each round uses a fresh home
// directory and a fresh plugin process; within a round the two modes run back to back, and which
// goes first alternates from round to round. It prints every round with the load average, the
// median round of each mode, the plugin/in-process speed ratio of the medians and the ratio of
// each round's pair (the spread says how much the machine's other load moved the figures).
// `make bench` runs it.
//
// Profiling: -cpuprofile writes this process's CPU profile; -plugin-cpuprofile P makes the plugin
// of round N write its own to P.N (through pluginapi.CPUProfileEnv). -modes runs one mode alone.
package main

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/plugins/overlay/overlaydriver"
	"github.com/pluggable-storage/storage/plugins/vfs/vfsdriver"
)

func main() {
	size := flag.String("size", "1GiB", "layer size (e.g. 256MiB, 1GiB)")
	fileSize := flag.String("file-size", "256KiB", "size of each regular file in the layer")
	driver := flag.String("driver", "vfs", "driver to measure (vfs or overlay)")
	binDir := flag.String("bin", "bin", "directory holding containers-storage-driver-<name>")
	rounds := flag.Int("rounds", 3, "rounds per mode")
	dir := flag.String("dir", "", "scratch directory (default: a new temp dir)")
	modes := flag.String("modes", "in-process,plugin", "modes to run, comma-separated (in-process, plugin)")
	cpuProfile := flag.String("cpuprofile", "", "write this process's CPU profile of all rounds to this file")
	pluginProfile := flag.String("plugin-cpuprofile", "", "write the plugin's CPU profile of round N to this path + \".N\" ("+pluginapi.CPUProfileEnv+")")
	flag.Parse()

	total, err := parseSize(*size)
	check(err)
	per, err := parseSize(*fileSize)
	check(err)
	scratch := *dir
	if scratch == "" {
		scratch, err = os.MkdirTemp("", "pluginio-")
		check(err)
		defer os.RemoveAll(scratch)
	} else {
		check(os.MkdirAll(scratch, 0o755))
	}
	newInProcess := map[string]func() pluginapi.Driver{
		"vfs":     func() pluginapi.Driver { return vfsdriver.New() },
		"overlay": func() pluginapi.Driver { return overlaydriver.New() },
	}[*driver]
	if newInProcess == nil {
		check(fmt.Errorf("unknown driver %q (want vfs or overlay)", *driver))
	}
	exe, err := filepath.Abs(filepath.Join(*binDir, "containers-storage-driver-"+*driver))
	check(err)
	var runIn, runPlugin bool
	for _, m := range strings.Split(*modes, ",") {
		switch m {
		case "in-process":
			runIn = true
		case "plugin":
			runPlugin = true
		default:
			check(fmt.Errorf("unknown mode %q (want in-process or plugin)", m))
		}
	}
	if *cpuProfile != "" {
		prof, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(prof))
		defer prof.Close()
		defer pprof.StopCPUProfile()
	}

	fmt.Printf("plugin boundary: driver %s, layer %s of %s files, %d rounds per mode, GOMAXPROCS %d\n",
		*driver, *size, *fileSize, *rounds, runtime.GOMAXPROCS(0))
	fmt.Printf("load average before: %s\n", loadAvg())
	var inproc, plugin []result
	runInProcess := func(i int) {
		r, err := measure(scratch, fmt.Sprintf("in-%d", i), newInProcess(), nil, total, per)
		check(err)
		fmt.Printf("  round %d in-process  apply %6.0f MiB/s  diff %6.0f MiB/s  (load %s)\n", i, r.applyRate(total), r.diffRate(total), loadAvg())
		inproc = append(inproc, r)
	}
	runPluginRound := func(i int) {
		if *pluginProfile != "" {
			check(os.Setenv(pluginapi.CPUProfileEnv, fmt.Sprintf("%s.%d", *pluginProfile, i)))
		}
		c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: *driver, Path: exe})
		check(err)
		r, err := measure(scratch, fmt.Sprintf("plugin-%d", i), c, c.Close, total, per)
		check(err)
		fmt.Printf("  round %d plugin      apply %6.0f MiB/s  diff %6.0f MiB/s  (load %s)\n", i, r.applyRate(total), r.diffRate(total), loadAvg())
		plugin = append(plugin, r)
	}
	// Alternate which mode goes first, so that neither always runs on a cooler (or warmer) machine.
	var order []func(int)
	if runIn {
		order = append(order, runInProcess)
	}
	if runPlugin {
		order = append(order, runPluginRound)
	}
	for i := 0; i < *rounds; i++ {
		for j := range order {
			order[(i+j)%len(order)](i)
		}
	}
	fmt.Printf("load average after: %s\n", loadAvg())
	if runIn && runPlugin {
		fmt.Print("ratio of each round's pair:")
		for i := range inproc {
			fmt.Printf(" %.3f", inproc[i].total().Seconds()/plugin[i].total().Seconds())
		}
		fmt.Println()
	}
	fmt.Printf("%-10s %12s %12s %12s %12s   (median of %d rounds each)\n", "mode", "apply MiB/s", "diff MiB/s", "both s", "both MiB/s", *rounds)
	var in, pl result
	if runIn {
		in = median(inproc)
		printRow("in-process", in, total)
	}
	if runPlugin {
		pl = median(plugin)
		printRow("plugin", pl, total)
	}
	if runIn && runPlugin {
		fmt.Printf("ratio plugin/in-process (diff+apply speed): %.3f  (apply %.3f, diff %.3f)\n",
			in.total().Seconds()/pl.total().Seconds(), in.apply.Seconds()/pl.apply.Seconds(), in.diff.Seconds()/pl.diff.Seconds())
	}
}

func printRow(name string, r result, total int64) {
	fmt.Printf("%-10s %12.0f %12.0f %12.2f %12.0f\n", name, r.applyRate(total), r.diffRate(total),
		r.total().Seconds(), float64(total)/(1<<20)/r.total().Seconds())
}

// loadAvg is the 1, 5 and 15 minute load averages, from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

type result struct{ apply, diff time.Duration }

func (r result) total() time.Duration { return r.apply + r.diff }

func (r result) applyRate(total int64) float64 { return float64(total) / (1 << 20) / r.apply.Seconds() }
func (r result) diffRate(total int64) float64  { return float64(total) / (1 << 20) / r.diff.Seconds() }

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].total() < rs[j].total() })
	return rs[len(rs)/2]
}

// measure applies a generated layer into a fresh driver home and reads its diff back.
func measure(scratch, name string, d pluginapi.Driver, closeFn func() error, total, per int64) (result, error) {
	ctx := context.Background()
	root := filepath.Join(scratch, name)
	if closeFn != nil {
		defer closeFn()
	}
	defer os.RemoveAll(root)
	if _, err := d.Init(ctx, pluginapi.InitOptions{
		Home: filepath.Join(root, "home"), RunHome: filepath.Join(root, "run"),
		GraphRoot: root, RunRoot: filepath.Join(root, "runroot"),
	}); err != nil {
		return result{}, err
	}
	defer d.Cleanup(ctx)
	const id = "bench-layer"
	if err := d.Create(ctx, id, "", pluginapi.CreateOpts{}); err != nil {
		return result{}, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayer(pw, total, per)) }()
	start := time.Now()
	n, err := d.ApplyDiff(ctx, id, "", pr)
	if err != nil {
		return result{}, fmt.Errorf("%s: apply: %w", name, err)
	}
	applied := time.Since(start)
	if n != total {
		return result{}, fmt.Errorf("%s: applied %d bytes, want %d", name, n, total)
	}
	start = time.Now()
	rc, err := d.Diff(ctx, id, "")
	if err != nil {
		return result{}, fmt.Errorf("%s: diff: %w", name, err)
	}
	got, err := countTarContent(rc)
	rc.Close()
	if err != nil {
		return result{}, fmt.Errorf("%s: diff: %w", name, err)
	}
	diffed := time.Since(start)
	if got != total {
		return result{}, fmt.Errorf("%s: diff carried %d bytes of content, want %d", name, got, total)
	}
	if err := d.Remove(ctx, id); err != nil {
		return result{}, err
	}
	return result{apply: applied, diff: diffed}, nil
}

// writeLayer writes a tar of total bytes of file content in files of per bytes, 64 to a directory.
// Content comes from one random block, so generating it costs next to nothing.
func writeLayer(w io.Writer, total, per int64) error {
	block := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(block)
	tw := tar.NewWriter(w)
	mtime := time.Unix(1700000000, 0)
	for i := int64(0); total > 0; i++ {
		if i%64 == 0 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%05d/", i/64), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}); err != nil {
				return err
			}
		}
		n := min(per, total)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%05d/f%07d", i/64, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: n, ModTime: mtime}); err != nil {
			return err
		}
		for left := n; left > 0; {
			chunk := min(left, int64(len(block)))
			off := (i * 4099) % (int64(len(block)) - chunk + 1)
			if _, err := tw.Write(block[off : off+chunk]); err != nil {
				return err
			}
			left -= chunk
		}
		total -= n
	}
	return tw.Close()
}

// countTarContent reads a tar to its end and returns the bytes of regular-file content.
func countTarContent(r io.Reader) (int64, error) {
	tr := tar.NewReader(r)
	var total int64
	buf := make([]byte, 1<<20)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if h.Typeflag == tar.TypeReg {
			n, err := io.CopyBuffer(io.Discard, tr, buf)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			var n int64
			if _, err := fmt.Sscanf(strings.TrimSuffix(s, u.suffix), "%d", &n); err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("bad size %q", s)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "pluginio:", err)
		os.Exit(1)
	}
}
