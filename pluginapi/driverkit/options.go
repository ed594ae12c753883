package driverkit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
)

// Option is one parsed driver option. Errors about it name Key, as the user wrote it.
type Option struct {
	Driver string // the driver's name, first word of every error about the option
	Key    string // the key as written, white space trimmed
	Name   string // Key lower-cased with its prefix removed: what a driver switches on
	Value  string // the value, white space trimmed
}

// ParseOptions splits raw "key=value" driver options (InitOptions.Options) into Options, in
// order. The first of prefixes that a lower-cased key starts with is removed from Name; list
// longer prefixes before their own prefixes ("overlay2.", "overlay.", "."). An option without
// "=" is ErrInvalidArgument naming it. Whether a name is known is the driver's decision
// (Option.Unknown).
func ParseOptions(driver string, raw []string, prefixes ...string) ([]Option, error) {
	opts := make([]Option, 0, len(raw))
	for _, s := range raw {
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("%s option %q: want key=value: %w", driver, s, errdefs.ErrInvalidArgument)
		}
		o := Option{Driver: driver, Key: strings.TrimSpace(key), Value: strings.TrimSpace(val)}
		o.Name = strings.ToLower(o.Key)
		for _, p := range prefixes {
			if name, ok := strings.CutPrefix(o.Name, p); ok {
				o.Name = name
				break
			}
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// Errorf returns an error about the option: "<driver> option <key>: " followed by format. The
// format should wrap an errdefs class with %w.
func (o Option) Errorf(format string, args ...any) error {
	return fmt.Errorf("%s option %s: "+format, append([]any{o.Driver, o.Key}, args...)...)
}

// Unknown is the error for an option name the driver does not know: ErrInvalidArgument naming
// the key.
func (o Option) Unknown() error {
	return o.Errorf("unknown option: %w", errdefs.ErrInvalidArgument)
}

// Bool parses the value as strconv.ParseBool does ("1", "t", "true", "0", "false", ...). Any
// other value is ErrInvalidArgument naming the key.
func (o Option) Bool() (bool, error) {
	b, err := strconv.ParseBool(o.Value)
	if err != nil {
		return false, o.Errorf("%q is not a boolean: %w", o.Value, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// Size parses the value with ParseSize. A value that is not a size is ErrInvalidArgument naming
// the key.
func (o Option) Size() (uint64, error) {
	n, err := ParseSize(o.Value)
	if err != nil {
		return 0, o.Errorf("%w", err)
	}
	return n, nil
}

// SplitList splits a comma-separated value ("/a, /b,,/c") into its non-empty, trimmed items.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ParseSize parses a size in bytes such as "4096", "50M", "1.5g" or "10GiB": a non-negative
// number with an optional k, m, g, t or p suffix (binary units; "b" and "ib" after it are
// ignored, as by the established tool's RAMInBytes). Anything else, and sizes of 2^63 bytes or
// more, is ErrInvalidArgument.
func ParseSize(s string) (uint64, error) {
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

// StorageSize validates the storage options of a driver whose only one is "size" (a quota; any
// case): it returns the size in bytes, 0 when none is given. A size that does not parse or is 0,
// and any other key, is ErrInvalidArgument naming the key. Keys are checked in sorted order, so
// the error is the same from call to call.
func StorageSize(storageOpt map[string]string) (uint64, error) {
	var size uint64
	keys := make([]string, 0, len(storageOpt))
	for k := range storageOpt {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !strings.EqualFold(k, "size") {
			return 0, fmt.Errorf("unknown storage option %s: %w", k, errdefs.ErrInvalidArgument)
		}
		n, err := ParseSize(storageOpt[k])
		if err != nil {
			return 0, fmt.Errorf("storage option %s: %w", k, err)
		}
		if n == 0 {
			return 0, fmt.Errorf("storage option %s: size must be positive: %w", k, errdefs.ErrInvalidArgument)
		}
		size = n
	}
	return size, nil
}
