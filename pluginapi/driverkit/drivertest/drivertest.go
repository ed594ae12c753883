// Package drivertest holds the test helpers that driver packages (plugins/*) share: starting a
// driver in-process for one test, fresh directories on a test file system, files that fill a
// quota. Behaviour every driver promises is tested by package conformance; this package only
// serves a driver's own tests of what is peculiar to it.
//
// Every helper undoes what it did when the test ends (t.Cleanup), and a failed undo fails the
// test.
package drivertest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/pluggable-storage/storage/pluginapi"
)

// Init initialises d with opts, failing t if it cannot, and registers d.Cleanup to run when t
// ends (after t's context is cancelled, so Cleanup gets a context of its own). It returns Init's
// Info.
func Init(t testing.TB, d pluginapi.Driver, opts pluginapi.InitOptions) pluginapi.Info {
	t.Helper()
	info, err := d.Init(t.Context(), opts)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return info
}

// TempDir makes a fresh directory in dir, named pattern plus a random suffix as by
// os.MkdirTemp, and removes it with its contents when t ends. Use it where t.TempDir would be on
// the wrong file system: under the mount point of a test btrfs or zfs.
func TempDir(t testing.TB, dir, pattern string) string {
	t.Helper()
	p, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(p); err != nil {
			t.Errorf("remove %s: %v", p, err)
		}
	})
	return p
}

// FillFile creates the file p, writes at least size bytes of data to it (whole MiB, no holes)
// and syncs it, so that a quota smaller than size is hit by a write or by the sync. It returns
// the first error, e.g. one wrapping EDQUOT.
func FillFile(p string, size int) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for n := 0; n < size; n += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			return errors.Join(err, f.Close())
		}
	}
	return errors.Join(f.Sync(), f.Close())
}
