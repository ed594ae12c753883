package overlaydriver

import (
	"fmt"
	"os"
	"strconv"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// config is the validated form of InitOptions.Options.
type config struct {
	mountOpts           string       // extra options for every mount, comma separated
	skipMountHome       bool         // do not make the home a private bind mount
	mountProgram        string       // fuse-overlayfs or compatible; "" for kernel overlay
	ignoreChownErrors   bool         // passed to archive.Apply
	forceMask           *os.FileMode // passed to archive.Apply; needs a mount program
	overrideKernelCheck bool         // accepted for compatibility; has no effect
}

// parseOptions validates the driver options. Keys may carry the "overlay.", "overlay2." or "."
// prefix or none (the bare keys of [storage.options.overlay]). An unknown key, or a value that
// does not parse, is ErrInvalidArgument naming the key; a key naming a feature this driver does not
// implement is ErrNotSupported naming the key.
func parseOptions(raw []string) (config, error) {
	var c config
	opts, err := driverkit.ParseOptions(Name, raw, "overlay2.", "overlay.", ".")
	if err != nil {
		return c, err
	}
	forceMaskKey := ""
	for _, opt := range opts {
		key, val := opt.Key, opt.Value
		switch opt.Name {
		case "mountopt":
			c.mountOpts = val
		case "skip_mount_home":
			c.skipMountHome, err = opt.Bool()
		case "ignore_chown_errors":
			c.ignoreChownErrors, err = opt.Bool()
		case "override_kernel_check":
			c.overrideKernelCheck, err = opt.Bool()
		case "mount_program":
			if val != "" {
				if err = checkExecutable(val); err != nil {
					err = fmt.Errorf("overlay option %s=%s: %w", key, val, err)
				}
			}
			c.mountProgram = val
		case "force_mask":
			c.forceMask, err = parseForceMask(key, val)
			forceMaskKey = key
		case "size", "inodes":
			// Quotas need XFS project quotas, which this driver does not implement.
			if val != "" {
				err = opt.Errorf("project quotas are not implemented: %w", errdefs.ErrNotSupported)
			}
		case "imagestore", "additionalimagestore", "additionallayerstore":
			if val != "" {
				err = opt.Errorf("separate image and layer stores are not implemented: %w", errdefs.ErrNotSupported)
			}
		case "use_composefs":
			var on bool
			if on, err = opt.Bool(); err == nil && on {
				err = opt.Errorf("composefs is not implemented: %w", errdefs.ErrNotSupported)
			}
		default:
			err = opt.Unknown()
		}
		if err != nil {
			return c, err
		}
	}
	if c.forceMask != nil && c.mountProgram == "" {
		return c, fmt.Errorf("overlay option %s is supported only with mount_program: %w", forceMaskKey, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// parseForceMask accepts "shared" (0755), "private" (0700) or an octal mode.
func parseForceMask(key, val string) (*os.FileMode, error) {
	var m os.FileMode
	switch val {
	case "":
		return nil, nil
	case "shared":
		m = 0o755
	case "private":
		m = 0o700
	default:
		n, err := strconv.ParseUint(val, 8, 32)
		if err != nil || n > 0o7777 {
			return nil, fmt.Errorf("overlay option %s=%q: want shared, private or an octal mode: %w", key, val, errdefs.ErrInvalidArgument)
		}
		m = os.FileMode(n)
	}
	return &m, nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("mount program: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("mount program %s is not an executable file: %w", path, errdefs.ErrInvalidArgument)
	}
	return nil
}
