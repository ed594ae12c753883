package vfsdriver

import (
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
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
	opts, err := driverkit.ParseOptions(Name, raw, "vfs.", ".")
	if err != nil {
		return o, err
	}
	for _, opt := range opts {
		switch opt.Name {
		case "ignore_chown_errors":
			if o.ignoreChownErrors, err = opt.Bool(); err != nil {
				return o, err
			}
		case "imagestore", "additionalimagestore":
			o.imageStores = append(o.imageStores, driverkit.SplitList(opt.Value)...)
		case "mountopt":
			return o, opt.Errorf("vfs driver does not support mount options: %w", errdefs.ErrInvalidArgument)
		default:
			return o, opt.Unknown()
		}
	}
	return o, nil
}
