package zfsdriver

import (
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// options are the validated driver options.
type options struct {
	// fsname is the dataset under which layers are created (zfs.fsname); "" means the dataset
	// holding the graph root.
	fsname string
	// mountOpts are added to every mount of a layer (zfs.mountopt, comma-separated).
	mountOpts []string
}

// parseOptions validates the "key=value" driver options. Keys are case-insensitive and may carry
// the "zfs." or "." prefix. Any key but fsname and mountopt is ErrInvalidArgument naming the key.
func parseOptions(raw []string) (options, error) {
	var o options
	opts, err := driverkit.ParseOptions(Name, raw, "zfs.", ".")
	if err != nil {
		return o, err
	}
	for _, opt := range opts {
		switch opt.Name {
		case "fsname":
			val := opt.Value
			if val == "" || strings.ContainsAny(val, "@# \t") || strings.HasPrefix(val, "/") || strings.HasSuffix(val, "/") {
				return o, opt.Errorf("%q is not a dataset name: %w", val, errdefs.ErrInvalidArgument)
			}
			o.fsname = val
		case "mountopt":
			o.mountOpts = append(o.mountOpts, driverkit.SplitList(opt.Value)...)
		default:
			return o, opt.Unknown()
		}
	}
	return o, nil
}
