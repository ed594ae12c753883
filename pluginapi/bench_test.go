package pluginapi_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/pluggable-storage/storage/pluginapi"
	"github.com/pluggable-storage/storage/pluginapi/internal/testdriver"
)

// BenchmarkDiffApply copies a 128 MiB layer with Diff piped into ApplyDiff: the driver called
// directly, through the in-process harness, and through a plugin process. The plumbing's cost is
// the difference between the first and the others.
func BenchmarkDiffApply(b *testing.B) {
	const size = 128 << 20
	payload := makeTar(b, []tarFile{{"big", random(b, size)}})
	for _, bc := range []struct {
		name string
		open func(b *testing.B) pluginapi.Driver
	}{
		{"direct", func(b *testing.B) pluginapi.Driver {
			d := testdriver.New("test", []int{pluginapi.APIVersion})
			d.InProcess = true
			return d
		}},
		{"in-process", func(b *testing.B) pluginapi.Driver {
			td := testdriver.New("test", []int{pluginapi.APIVersion})
			td.InProcess = true
			d, stop, err := pluginapi.NewInProcess(td)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { stop() })
			return d
		}},
		{"plugin", func(b *testing.B) pluginapi.Driver {
			c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: "test", Path: testdriverPath})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			return c
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			d := bc.open(b)
			if _, err := d.Init(ctx, pluginapi.InitOptions{Home: b.TempDir()}); err != nil {
				b.Fatal(err)
			}
			if err := d.Create(ctx, "src", "", pluginapi.CreateOpts{}); err != nil {
				b.Fatal(err)
			}
			if _, err := d.ApplyDiff(ctx, "src", "", bytes.NewReader(payload)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.ResetTimer()
			i := 0
			for b.Loop() {
				dst := fmt.Sprintf("dst-%d", i)
				i++
				if err := d.Create(ctx, dst, "", pluginapi.CreateOpts{}); err != nil {
					b.Fatal(err)
				}
				rc, err := d.Diff(ctx, "src", "")
				if err != nil {
					b.Fatal(err)
				}
				n, err := d.ApplyDiff(ctx, dst, "", rc)
				rc.Close()
				if err != nil || n != size {
					b.Fatalf("apply: %d, %v", n, err)
				}
				b.StopTimer()
				if err := d.Remove(ctx, dst); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
