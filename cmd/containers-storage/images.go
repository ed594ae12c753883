package main

import (
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		&command{
			names:       []string{"create-image", "createimage"},
			optionsHelp: "[options [...]] topLayerNameOrID",
			usage:       "Create a new image using layers",
			maxArgs:     1,
			action:      createImage,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addNames(fs, f, "Image")
				fs.StringVarP(&f.id, "id", "i", "", "Image ID")
				fs.StringVarP(&f.digest, "digest", "d", "", "Image Digest")
				fs.StringVarP(&f.metadata, "metadata", "m", "", "Metadata")
				fs.StringVarP(&f.metadataFile, "metadata-file", "f", "", "Metadata File")
				addJSON(fs, f)
			},
		},
		&command{
			names:       []string{"image"},
			optionsHelp: "[options [...]] imageNameOrID [...]",
			usage:       "Examine an image",
			minArgs:     1,
			maxArgs:     -1,
			action:      showImages,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"images"},
			optionsHelp: "[options [...]]",
			usage:       "List images",
			maxArgs:     0,
			action:      listImages,
			addFlags:    addImagesFlags,
		},
		&command{
			names:       []string{"images-by-digest"},
			optionsHelp: "[options [...]] DIGEST",
			usage:       "List images by digest",
			minArgs:     1,
			maxArgs:     1,
			action:      imagesByDigest,
			addFlags:    addImagesFlags,
		},
		dirCommand([]string{"get-image-dir", "getimagedir"}, "imageNameOrID",
			"Find the image's associated data directory", (*core.Store).ImageDir),
		dirCommand([]string{"get-image-run-dir", "getimagerundir"}, "imageNameOrID",
			"Find the image's associated runtime directory", (*core.Store).ImageRunDir),
	)
}

func addImagesFlags(fs *pflag.FlagSet, f *cmdFlags) {
	addJSON(fs, f)
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "Only print IDs")
}

// dirCommand is get-K-dir or get-K-run-dir: it prints the directory dir finds for its one
// argument.
func dirCommand(names []string, ref, usage string, dir func(s *core.Store, ref string) (string, error)) *command {
	return &command{
		names:       names,
		optionsHelp: "[options [...]] " + ref,
		usage:       usage,
		minArgs:     1,
		maxArgs:     1,
		action: func(inv *invocation, args []string) (int, error) {
			path, err := dir(inv.store, args[0])
			if err != nil {
				return 1, err
			}
			inv.printf("%s\n", path)
			return 0, nil
		},
	}
}

func createImage(inv *invocation, args []string) (int, error) {
	md, err := inv.flags.readMetadata()
	if err != nil {
		return 1, err
	}
	o := core.ImageOptions{
		ID:       inv.flags.id,
		Names:    inv.flags.names,
		Digest:   digest.Digest(inv.flags.digest),
		Metadata: md,
	}
	if len(args) > 0 {
		o.TopLayer = args[0]
	}
	img, err := inv.store.CreateImage(inv.ctx, o)
	if err != nil {
		return 1, err
	}
	return inv.printCreated(img, img.ID, img.Names)
}

// showImages prints the images that match; an argument that matches nothing is skipped
// silently and makes the exit code 1.
func showImages(inv *invocation, args []string) (int, error) {
	matched := matchAll(args, inv.store.Image)
	return inv.report(matched, len(matched) != len(args), func() {
		for _, img := range matched {
			inv.printf("ID: %s\n", img.ID)
			inv.printEach("Name: %s\n", img.Names)
			inv.printf("Top Layer: %s\n", img.TopLayer)
			inv.printEach("Top Layer: %s\n", img.MappedTopLayers)
			for _, d := range img.Digests {
				inv.printf("Digest: %s\n", d.String())
			}
			inv.printEach("Data: %s\n", img.BigDataNames)
			if size, err := inv.store.ImageSize(inv.ctx, img.ID); err != nil {
				inv.printf("Size unknown: %+v\n", err)
			} else {
				inv.printf("Size: %d\n", size)
			}
			if img.ReadOnly {
				inv.printf("Read Only: true\n")
			}
		}
	})
}

// printImages ends images and images-by-digest: the error if err is set, else with -j the
// list as JSON (null when empty), else each image's ID and (without -q) its names, digests and
// data items.
func (inv *invocation) printImages(images []core.Image, err error) (int, error) {
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(nilIfEmpty(images))
	}
	for _, img := range images {
		inv.printf("%s\n", img.ID)
		if inv.flags.quiet {
			continue
		}
		inv.printEach("\tname: %s\n", img.Names)
		for _, d := range img.Digests {
			inv.printf("\tdigest: %s\n", d.String())
		}
		inv.printEach("\tdata: %s\n", img.BigDataNames)
	}
	return 0, nil
}

func listImages(inv *invocation, _ []string) (int, error) {
	return inv.printImages(inv.store.Images())
}

// imagesByDigest validates the digest before asking the store; no match is an empty result
// (null in JSON), not an error.
func imagesByDigest(inv *invocation, args []string) (int, error) {
	d := digest.Digest(args[0])
	if err := d.Validate(); err != nil {
		inv.eprintf("%s: %v\n", args[0], err)
		return 1, nil
	}
	return inv.printImages(inv.store.ImagesByDigest(d))
}
