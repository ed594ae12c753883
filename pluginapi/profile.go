package pluginapi

import (
	"os"
	"runtime/pprof"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// CPUProfileEnv, when set in a plugin's environment (the host passes its own environment on), is
// a file the plugin writes a pprof CPU profile of its whole life to. The profile is complete only
// if the plugin exits through Serve's own paths (the Client closed, or the host gone); a plugin
// killed outright leaves a truncated file. For measuring the plugin boundary (see
// internal/bench/pluginio), not for production.
const CPUProfileEnv = "CSTORAGE_PLUGIN_CPUPROFILE"

// startCPUProfile starts the profile CPUProfileEnv asks for and returns the function that ends it
// (safe to call several times and from several goroutines; later calls wait for the first).
func startCPUProfile(log hclog.Logger) func() {
	path := os.Getenv(CPUProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Warn("cannot write CPU profile", "path", path, "error", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Warn("cannot start CPU profile", "path", path, "error", err)
		f.Close()
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.Warn("cannot write CPU profile", "path", path, "error", err)
			}
		})
	}
}
