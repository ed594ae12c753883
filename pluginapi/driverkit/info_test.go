package driverkit

import (
	"slices"
	"testing"

	"github.com/pluggable-storage/storage/pluginapi"
)

func TestInfo(t *testing.T) {
	caps := []string{pluginapi.CapQuota, pluginapi.CapReadOnlyMount}
	info := Info("zfs", "1.2.3", caps...)
	if info.Name != "zfs" || info.Version != "1.2.3" || !slices.Equal(info.APIVersions, []int{pluginapi.APIVersion}) || !slices.Equal(info.Capabilities, caps) {
		t.Fatalf("Info = %+v", info)
	}
	caps[0] = "changed"
	if info.Capabilities[0] != pluginapi.CapQuota {
		t.Fatal("Info shares the caller's capability slice")
	}
	if none := Info("vfs", "1"); none.Capabilities == nil || len(none.Capabilities) != 0 {
		t.Fatalf("Info with no capabilities: %#v, want an empty, non-nil list", none.Capabilities)
	}
}
