package pluginapi_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

func TestErrorClassesCrossTheBoundary(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			ctx := context.Background()
			for i, class := range errdefs.Classes {
				t.Run(class.Error(), func(t *testing.T) {
					id := "err-" + strconv.Itoa(i)
					err := d.Create(ctx, id, "", pluginapi.CreateOpts{})
					if !errors.Is(err, class) {
						t.Fatalf("Create(%s) = %v, want class %v", id, err, class)
					}
					if got := errdefs.Class(err); got != class {
						t.Fatalf("class of %v is %v, want %v", err, got, class)
					}
					if want := fmt.Sprintf("create layer %s: asked to fail: %v", id, class); err.Error() != want {
						t.Fatalf("text %q, want %q", err, want)
					}
					if errors.Is(err, pluginapi.ErrPluginDied) {
						t.Fatalf("a driver's own %v error reads as a dead plugin: %v", class, err)
					}
				})
			}
			t.Run("no class", func(t *testing.T) {
				err := d.Create(ctx, "err-none", "", pluginapi.CreateOpts{})
				if err == nil || errdefs.Class(err) != nil {
					t.Fatalf("Create(err-none) = %v (class %v), want an error with no class", err, errdefs.Class(err))
				}
				if !strings.Contains(err.Error(), "asked to fail with no class") {
					t.Fatalf("text lost: %q", err)
				}
			})
			t.Run("unknown layer", func(t *testing.T) {
				_, err := d.Metadata(ctx, "missing")
				if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "missing") {
					t.Fatalf("Metadata(missing) = %v, want ErrNotFound naming the layer", err)
				}
				if _, err := d.Diff(ctx, "missing", ""); !errors.Is(err, errdefs.ErrNotFound) {
					t.Fatalf("Diff(missing) = %v, want ErrNotFound from Diff itself", err)
				}
			})
		})
	}
}

func TestPanicBecomesErrorAndPluginKeepsServing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			ctx := context.Background()
			pid := statusValue(t, d, "Pid")
			err := d.Create(ctx, "panic-1", "", pluginapi.CreateOpts{})
			if err == nil || !strings.Contains(err.Error(), "panic") || errdefs.Class(err) != nil {
				t.Fatalf("Create(panic-1) = %v (class %v), want an error saying panic, of no class", err, errdefs.Class(err))
			}
			if err := d.Create(ctx, "after-panic", "", pluginapi.CreateOpts{}); err != nil {
				t.Fatalf("Create after a panic: %v", err)
			}
			if got := statusValue(t, d, "Pid"); got != pid {
				t.Fatalf("plugin pid changed from %s to %s: the panic took the process down", pid, got)
			}
		})
	}
}

func TestCallCancelledByContext(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			d := b.open(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- d.Create(ctx, "sleep-1", "", pluginapi.CreateOpts{}) }()
			eventually(t, "the call to reach the driver", func() bool { return statusValue(t, d, "Sleeping") == "1" })
			cancel()
			err := <-errc
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled Create = %v, want context.Canceled", err)
			}
			if errors.Is(err, pluginapi.ErrPluginDied) {
				t.Fatalf("a cancelled call reads as a dead plugin: %v", err)
			}
			eventually(t, "the driver to see ctx.Done()", func() bool { return statusValue(t, d, "Cancelled") == "1" })
			if _, err := d.ListLayers(context.Background()); err != nil {
				t.Fatalf("call after a cancelled one: %v", err)
			}
		})
	}
}
