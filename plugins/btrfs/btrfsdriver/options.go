package btrfsdriver

import "github.com/pluggable-storage/storage/pluginapi/driverkit"

// options are the validated driver options.
type options struct {
	// minSpace is the smallest per-layer size quota accepted (btrfs.min_space); setting it
	// turns quota accounting on at Init, as the established driver does.
	minSpace uint64
	// defaultSize is the quota of every read-write layer created without a "size" storage
	// option (btrfs.size); 0 for none.
	defaultSize uint64
}

// parseOptions validates the "key=value" driver options. Keys are case-insensitive and may carry
// the "btrfs." or "." prefix. Any key but min_space and size (imagestore and mountopt included)
// is ErrInvalidArgument naming the key.
func parseOptions(raw []string) (options, error) {
	var o options
	opts, err := driverkit.ParseOptions(Name, raw, "btrfs.", ".")
	if err != nil {
		return o, err
	}
	for _, opt := range opts {
		switch opt.Name {
		case "min_space":
			o.minSpace, err = opt.Size()
		case "size":
			o.defaultSize, err = opt.Size()
		default:
			err = opt.Unknown()
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}
