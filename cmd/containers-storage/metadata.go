package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		&command{
			names:       []string{"metadata"},
			optionsHelp: "[LayerOrImageOrContainerNameOrID [...]]",
			usage:       "Retrieve layer, image, or container metadata",
			minArgs:     1,
			maxArgs:     -1,
			action:      showMetadata,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.BoolVarP(&f.quiet, "quiet", "q", false, "Omit names and IDs")
				addJSON(fs, f)
			},
		},
		&command{
			names:       []string{"set-metadata", "setmetadata"},
			optionsHelp: "[options [...]] layerOrImageOrContainerNameOrID",
			usage:       "Set layer, image, or container metadata",
			minArgs:     1,
			maxArgs:     1,
			action:      setMetadata,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.StringVarP(&f.metadata, "metadata", "m", "", "Metadata")
				fs.StringVarP(&f.metadataFile, "metadata-file", "f", "", "Metadata File")
			},
		},
		&command{
			names:       []string{"exists"},
			optionsHelp: "[LayerOrImageOrContainerNameOrID [...]]",
			usage:       "Check if a layer or image or container exists",
			minArgs:     1,
			maxArgs:     -1,
			action:      exists,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.BoolVarP(&f.quiet, "quiet", "q", false, "Don't print names")
				fs.BoolVarP(&f.existLayer, "layer", "l", false, "Only succeed if the match is a layer")
				fs.BoolVarP(&f.existImage, "image", "i", false, "Only succeed if the match is an image")
				fs.BoolVarP(&f.existCont, "container", "c", false, "Only succeed if the match is a container")
				addJSON(fs, f)
			},
		},
	)
}

// showMetadata prints "ARG: metadata" per argument (an empty value for a missing one) and exits
// 1 if any argument is missing.
func showMetadata(inv *invocation, args []string) (int, error) {
	found := map[string]string{}
	missing := false
	for _, arg := range args {
		md, err := inv.store.Metadata(arg)
		if err != nil {
			missing = true
			continue
		}
		found[arg] = strings.TrimSuffix(md, "\n")
	}
	return inv.report(found, missing, func() {
		for _, arg := range args {
			if inv.flags.quiet {
				inv.printf("%s\n", found[arg])
			} else {
				inv.printf("%s: %s\n", arg, found[arg])
			}
		}
	})
}

func setMetadata(inv *invocation, args []string) (int, error) {
	if inv.flags.metadata == "" && inv.flags.metadataFile == "" {
		return 1, errNoMetadata
	}
	md, err := inv.flags.readMetadata()
	if err != nil {
		return 1, err
	}
	if err := inv.store.SetMetadata(args[0], md); err != nil {
		return 1, err
	}
	return 0, nil
}

// exists reports, per argument, whether it names anything; with -l/-i/-c an argument of
// another kind also makes the exit code 1 (while its reported value stays true). Results are
// printed in argument order, each argument once.
func exists(inv *invocation, args []string) (int, error) {
	var kinds []core.Kind
	if inv.flags.existLayer {
		kinds = append(kinds, core.KindLayer)
	}
	if inv.flags.existImage {
		kinds = append(kinds, core.KindImage)
	}
	if inv.flags.existCont {
		kinds = append(kinds, core.KindContainer)
	}
	args = uniqueArgs(args)
	result := map[string]bool{}
	missing := false
	for _, arg := range args {
		any := inv.store.Exists(arg)
		result[arg] = any
		ok := any
		// Every kind flag given must match, as in the established tool.
		for _, k := range kinds {
			if !inv.store.Exists(arg, k) {
				ok = false
			}
		}
		if !ok {
			missing = true
		}
	}
	return inv.report(result, missing, func() {
		if inv.flags.quiet {
			return
		}
		for _, arg := range args {
			inv.printf("%s: %v\n", arg, result[arg])
		}
	})
}
