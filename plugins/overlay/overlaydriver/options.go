package overlaydriver

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
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
func parseOptions(opts []string) (config, error) {
	var c config
	forceMaskKey := ""
	for _, opt := range opts {
		rawKey, val, ok := strings.Cut(opt, "=")
		if !ok {
			return c, fmt.Errorf("overlay option %q: expected key=value: %w", opt, errdefs.ErrInvalidArgument)
		}
		key := strings.ToLower(strings.TrimSpace(rawKey))
		for _, p := range []string{"overlay2.", "overlay.", "."} {
			if strings.HasPrefix(key, p) {
				key = key[len(p):]
				break
			}
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "mountopt":
			c.mountOpts = val
		case "skip_mount_home":
			c.skipMountHome, err = parseBool(rawKey, val)
		case "ignore_chown_errors":
			c.ignoreChownErrors, err = parseBool(rawKey, val)
		case "override_kernel_check":
			c.overrideKernelCheck, err = parseBool(rawKey, val)
		case "mount_program":
			if val != "" {
				if err = checkExecutable(val); err != nil {
					err = fmt.Errorf("overlay option %s=%s: %w", rawKey, val, err)
				}
			}
			c.mountProgram = val
		case "force_mask":
			c.forceMask, err = parseForceMask(rawKey, val)
			forceMaskKey = rawKey
		case "size", "inodes":
			// Quotas need XFS project quotas, which this driver does not implement.
			if val != "" {
				err = fmt.Errorf("overlay option %s: project quotas are not implemented: %w", rawKey, errdefs.ErrNotSupported)
			}
		case "imagestore", "additionalimagestore", "additionallayerstore":
			if val != "" {
				err = fmt.Errorf("overlay option %s: separate image and layer stores are not implemented: %w", rawKey, errdefs.ErrNotSupported)
			}
		case "use_composefs":
			var on bool
			if on, err = parseBool(rawKey, val); err == nil && on {
				err = fmt.Errorf("overlay option %s: composefs is not implemented: %w", rawKey, errdefs.ErrNotSupported)
			}
		default:
			err = fmt.Errorf("unknown overlay option %q: %w", rawKey, errdefs.ErrInvalidArgument)
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

func parseBool(key, val string) (bool, error) {
	b, err := strconv.ParseBool(val)
	if err != nil {
		return false, fmt.Errorf("overlay option %s=%q: not a boolean: %w", key, val, errdefs.ErrInvalidArgument)
	}
	return b, nil
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
