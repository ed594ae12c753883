package btrfsdriver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
)

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
	for _, opt := range raw {
		key, val, ok := strings.Cut(opt, "=")
		if !ok {
			return o, fmt.Errorf("btrfs option %q: want key=value: %w", opt, errdefs.ErrInvalidArgument)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		name := strings.TrimPrefix(strings.TrimPrefix(key, "btrfs."), ".")
		switch name {
		case "min_space", "size":
			n, err := parseSize(val)
			if err != nil {
				return o, fmt.Errorf("btrfs option %s: %w", key, err)
			}
			if name == "min_space" {
				o.minSpace = n
			} else {
				o.defaultSize = n
			}
		default:
			return o, fmt.Errorf("btrfs option %s: unknown option %s: %w", key, key, errdefs.ErrInvalidArgument)
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
