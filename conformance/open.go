package conformance

import (
	"testing"

	"github.com/pluggable-storage/storage/pluginapi"
)

// open starts the driver for one case: a plugin process through pluginapi.NewClient (started
// lazily by the first call), or cfg.New() behind in-process gRPC. The returned func stops it.
func (h *harness) open(t *testing.T) (pluginapi.Driver, func() error, error) {
	if h.cfg.Executable != "" {
		c, err := pluginapi.NewClient(pluginapi.ClientConfig{Driver: h.cfg.Driver, Path: h.cfg.Executable})
		if err != nil {
			return nil, nil, err
		}
		h.proc = c
		return c, c.Close, nil
	}
	return pluginapi.NewInProcess(h.cfg.New())
}

// errPluginDied is the error a killed plugin's calls must wrap.
var errPluginDied = pluginapi.ErrPluginDied
