package vfsdriver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
)

// options are the validated driver options.
type options struct {
	// ignoreChownErrors: a chown the kernel refuses while copying or applying a layer leaves the
	// file owned by the driver's user (rootless use without a full ID mapping).
	ignoreChownErrors bool
	// imageStores are additional, read-only roots. A layer not found under Home is looked up
	// as <imagestore>/vfs/dir/<id>, as the established driver does.
	imageStores []string
}

// parseOptions validates the "key=value" driver options. Keys are case-insensitive and may carry
// the "vfs." or "." prefix. An unknown key, a value that does not parse, and the mount options the
// established driver rejects are ErrInvalidArgument naming the key.
func parseOptions(raw []string) (options, error) {
	var o options
	for _, opt := range raw {
		key, val, ok := strings.Cut(opt, "=")
		if !ok {
			return o, fmt.Errorf("vfs option %q: want key=value: %w", opt, errdefs.ErrInvalidArgument)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		name := key
		switch {
		case strings.HasPrefix(name, "vfs."):
			name = strings.TrimPrefix(name, "vfs.")
		case strings.HasPrefix(name, "."):
			name = strings.TrimPrefix(name, ".")
		}
		switch name {
		case "ignore_chown_errors":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return o, fmt.Errorf("vfs option %s: %q is not a boolean: %w", key, val, errdefs.ErrInvalidArgument)
			}
			o.ignoreChownErrors = b
		case "imagestore", "additionalimagestore":
			for _, s := range strings.Split(val, ",") {
				if s = strings.TrimSpace(s); s != "" {
					o.imageStores = append(o.imageStores, s)
				}
			}
		case "mountopt":
			return o, fmt.Errorf("vfs option %s: vfs driver does not support mount options: %w", key, errdefs.ErrInvalidArgument)
		default:
			return o, fmt.Errorf("vfs option %s: unknown option: %w", key, errdefs.ErrInvalidArgument)
		}
	}
	return o, nil
}
