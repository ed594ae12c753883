package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		&command{
			names:   []string{"shutdown"},
			usage:   "Shut down layer storage",
			maxArgs: 0,
			action: func(inv *invocation, _ []string) (int, error) {
				_, err := inv.store.Shutdown(inv.ctx, inv.flags.force)
				return inv.finishAll(err)
			},
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addJSON(fs, f)
				fs.BoolVarP(&f.force, "force", "f", false, "Unmount mounted layers first")
			},
		},
		&command{
			names:    []string{"status"},
			usage:    "Check on graph driver status",
			maxArgs:  0,
			action:   status,
			addFlags: addJSON,
		},
		&command{
			names:    []string{"version"},
			usage:    "Return containers-storage version information",
			maxArgs:  0,
			action:   showVersion,
			addFlags: addJSON,
		},
		&command{
			names:       []string{"config"},
			optionsHelp: "[configurationFile]",
			usage:       "Print storage library configuration as JSON",
			maxArgs:     1,
			action:      showConfig,
		},
		&command{
			names:   []string{"dedup"},
			usage:   "Dedup all images",
			maxArgs: 0,
			action:  dedup,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addJSON(fs, f)
				fs.StringVar(&f.hashMethod, "hash-method", "crc", "Specify the hash function to use to detect identical files")
			},
		},
	)
}

// status prints the store's and the driver's key/value pairs to stderr (JSON to stdout).
func status(inv *invocation, _ []string) (int, error) {
	pairs, err := inv.store.Status(inv.ctx)
	if err != nil {
		return 1, fmt.Errorf("status: %w", err)
	}
	if inv.flags.json {
		return inv.outputJSON(pairs)
	}
	printPairs(inv.stderr, pairs)
	return 0, nil
}

// showVersion prints this CLI's version (set at build time) to stderr (JSON to stdout).
func showVersion(inv *invocation, _ []string) (int, error) {
	pairs := [][2]string{{"Version", version}}
	if inv.flags.json {
		return inv.outputJSON(pairs)
	}
	printPairs(inv.stderr, pairs)
	return 0, nil
}

// storeOptionsJSON is the JSON form of the effective store options, with the established
// tool's keys (types.StoreOptions) plus the plugin search settings of this implementation.
type storeOptionsJSON struct {
	RunRoot        string   `json:"runroot,omitempty"`
	GraphRoot      string   `json:"root,omitempty"`
	ImageStore     string   `json:"imagestore,omitempty"`
	TransientStore bool     `json:"transient_store,omitempty"`
	Driver         string   `json:"driver,omitempty"`
	DriverPriority []string `json:"driver-priority,omitempty"`
	DriverOptions  []string `json:"driver-options,omitempty"`
	PluginPath     string   `json:"plugin-path,omitempty"`
	PluginDirs     []string `json:"plugin-dirs,omitempty"`
}

// showConfig prints the effective store options, or those of FILE (over the built-in
// defaults) when one is given.
func showConfig(inv *invocation, args []string) (int, error) {
	o := inv.opts
	if len(args) > 0 {
		loaded, err := core.LoadOptions(args[0])
		if err != nil {
			return 1, fmt.Errorf("reload: %w", err)
		}
		o = loaded
	}
	return inv.outputJSON(storeOptionsJSON{
		RunRoot: o.RunRoot, GraphRoot: o.GraphRoot, ImageStore: o.ImageStore,
		TransientStore: o.TransientStore, Driver: o.Driver, DriverPriority: o.DriverPriority,
		DriverOptions: o.DriverOptions, PluginPath: o.PluginPath, PluginDirs: o.PluginDirs,
	})
}

// dedup validates the hash method; deduplication itself is not supported by the store.
func dedup(inv *invocation, _ []string) (int, error) {
	switch inv.flags.hashMethod {
	case "crc", "size", "sha256":
	default:
		return 1, fmt.Errorf("invalid hash method: %s", inv.flags.hashMethod)
	}
	return 1, fmt.Errorf("dedup: %w", core.ErrDedupNotSupported)
}
