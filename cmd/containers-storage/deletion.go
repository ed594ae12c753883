package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		deleteCommand([]string{"delete"}, "[LayerOrImageOrContainerNameOrID [...]]",
			"Delete a layer or image or container, with no safety checks", (*core.Store).Delete),
		deleteCommand([]string{"delete-layer", "deletelayer"}, "[LayerNameOrID [...]]",
			"Delete a layer, with safety checks", (*core.Store).DeleteLayer),
		&command{
			names:       []string{"delete-image", "deleteimage"},
			optionsHelp: "[ImageNameOrID [...]]",
			usage:       "Delete an image, with safety checks",
			minArgs:     1,
			maxArgs:     -1,
			action:      deleteImages,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.BoolVarP(&f.test, "test", "t", false, "Only test removal")
				addJSON(fs, f)
			},
		},
		deleteCommand([]string{"delete-container", "deletecontainer"}, "[ContainerNameOrID [...]]",
			"Delete a container, with safety checks", (*core.Store).DeleteContainer),
		&command{
			names:   []string{"wipe"},
			usage:   "Wipe all layers, images, and containers",
			maxArgs: 0,
			action: func(inv *invocation, _ []string) (int, error) {
				return inv.finishAll(inv.store.Wipe(inv.ctx))
			},
			addFlags: addJSON,
		},
	)
}

// deleteCommand is delete, delete-layer or delete-container: del on every argument (each once),
// printing "ID: error" lines on stderr, or with -j a map of argument to error text ("" for
// success). Exit code 1 if any failed.
func deleteCommand(names []string, optionsHelp, usage string, del func(s *core.Store, ctx context.Context, ref string) error) *command {
	return &command{
		names:       names,
		optionsHelp: optionsHelp,
		usage:       usage,
		minArgs:     1,
		maxArgs:     -1,
		action: func(inv *invocation, args []string) (int, error) {
			args = uniqueArgs(args)
			result := make(map[string]string, len(args))
			failed := false
			for _, arg := range args {
				err := del(inv.store, inv.ctx, arg)
				result[arg] = errorText(err)
				failed = failed || err != nil
			}
			return inv.report(result, failed, func() {
				for _, arg := range args {
					if result[arg] != "" {
						inv.eprintf("%s: %s\n", arg, result[arg])
					}
				}
			})
		},
		addFlags: addJSON,
	}
}

type deletedImage struct {
	DeletedLayers []string `json:"deleted-layers,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// deleteImages deletes images with the layers only they use (-t: only reports them). The
// established tool prints the removed layers on stderr as "ID: layerID".
func deleteImages(inv *invocation, args []string) (int, error) {
	args = uniqueArgs(args)
	result := make(map[string]deletedImage, len(args))
	failed := false
	for _, arg := range args {
		layers, err := inv.store.DeleteImage(inv.ctx, arg, !inv.flags.test)
		result[arg] = deletedImage{DeletedLayers: layers, Error: errorText(err)}
		failed = failed || err != nil
	}
	return inv.report(result, failed, func() {
		for _, arg := range args {
			r := result[arg]
			if r.Error != "" {
				inv.eprintf("%s: %s\n", arg, r.Error)
				continue
			}
			for _, l := range r.DeletedLayers {
				inv.eprintf("%s: %s\n", arg, l)
			}
		}
	})
}

// finishAll ends wipe and shutdown: on success "" in JSON mode; on failure the error value
// itself in JSON mode (it has no exported fields, so {}) and nothing on stderr, else the error
// prefixed with the command name ("shutdown: a layer is mounted: ...").
func (inv *invocation) finishAll(err error) (int, error) {
	if err != nil {
		if inv.flags.json {
			code, jerr := inv.outputJSON(err)
			if jerr != nil {
				return code, jerr
			}
			return 1, nil
		}
		// The established text is "shutdown: <error>"; the store may name the operation
		// itself already.
		if prefix := inv.cmd.names[0] + ": "; !strings.HasPrefix(err.Error(), prefix) {
			return 1, fmt.Errorf("%s%w", prefix, err)
		}
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON("")
	}
	return 0, nil
}
