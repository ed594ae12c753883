package pluginapi_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pluggable-storage/storage/pluginapi"
)

// TestPluginCPUProfile: with CSTORAGE_PLUGIN_CPUPROFILE set, the plugin writes a pprof CPU profile
// (gzip-compressed protobuf) that is complete once the Client has closed it.
func TestPluginCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin.prof")
	t.Setenv(pluginapi.CPUProfileEnv, path)
	c := openClient(t)
	rc, err := c.Diff(context.Background(), "nope", "")
	if err == nil {
		rc.Close()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no profile: %v", err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile of %d bytes is not a gzip-compressed pprof profile", len(b))
	}
}
