package driverkit

import "github.com/pluggable-storage/storage/pluginapi"

// Info returns the pluginapi.Info of driver name at version, speaking the contract version this
// build is compiled against (pluginapi.APIVersion), with capabilities caps (Cap* values). The
// capability list is never nil: a driver with none reports an empty list.
func Info(name, version string, caps ...string) pluginapi.Info {
	return pluginapi.Info{
		Name:         name,
		Version:      version,
		APIVersions:  []int{pluginapi.APIVersion},
		Capabilities: append([]string{}, caps...),
	}
}
