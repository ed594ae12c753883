package conformance_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pluggable-storage/storage/conformance"
)

var (
	driverFlag = flag.String("driver", "vfs", "driver to test: an in-tree name (built from ./plugins/<name>) or the path of a plugin executable containers-storage-driver-<name>")
	optsFlag   = flag.String("driver-opts", "", "comma-separated driver options passed to Init")
	deepFlag   = flag.Int("deep-layers", 0, "layers stacked by DeepLayerRead (0: the suite's default)")
	filesFlag  = flag.Int("diffapply-files", 0, "files per layer in DiffApply (0: the suite's default)")
	quotaFlag  = flag.Bool("quota", false, "the driver enforces the size storage option: run SetQuota")
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := conformance.RemoveBuilds(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// TestConformance runs the suite against -driver as a plugin subprocess.
func TestConformance(t *testing.T) {
	cfg := conformance.Config{
		DeepLayerRead:  *deepFlag,
		DiffApplyFiles: *filesFlag,
		Quota:          *quotaFlag,
	}
	if *optsFlag != "" {
		cfg.Options = strings.Split(*optsFlag, ",")
	}
	if strings.Contains(*driverFlag, "/") {
		cfg.Executable = *driverFlag
		cfg.Driver = strings.TrimPrefix(filepath.Base(*driverFlag), "containers-storage-driver-")
	} else {
		cfg.Driver = *driverFlag
		cfg.Executable = conformance.BuildDriver(t, cfg.Driver)
	}
	conformance.Run(t, cfg)
}
