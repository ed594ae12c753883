package zfsdriver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
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
	for _, opt := range raw {
		key, val, ok := strings.Cut(opt, "=")
		if !ok {
			return o, fmt.Errorf("zfs option %q: want key=value: %w", opt, errdefs.ErrInvalidArgument)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		switch strings.TrimPrefix(strings.TrimPrefix(key, "zfs."), ".") {
		case "fsname":
			if val == "" || strings.ContainsAny(val, "@# \t") || strings.HasPrefix(val, "/") || strings.HasSuffix(val, "/") {
				return o, fmt.Errorf("zfs option %s: %q is not a dataset name: %w", key, val, errdefs.ErrInvalidArgument)
			}
			o.fsname = val
		case "mountopt":
			for _, m := range strings.Split(val, ",") {
				if m = strings.TrimSpace(m); m != "" {
					o.mountOpts = append(o.mountOpts, m)
				}
			}
		default:
			return o, fmt.Errorf("zfs option %s: unknown option %s: %w", key, key, errdefs.ErrInvalidArgument)
		}
	}
	return o, nil
}

// parseSize parses a size such as "50M", "1.5g", "10GiB", "4096" (binary units, as the
// established tool's RAMInBytes). Anything else is ErrInvalidArgument.
func parseSize(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := uint64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		case 'p':
			mult = 1 << 50
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 || f*float64(mult) >= 1<<63 {
		return 0, fmt.Errorf("size %q: not a size: %w", s, errdefs.ErrInvalidArgument)
	}
	return uint64(f * float64(mult)), nil
}
