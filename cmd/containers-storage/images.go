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
		&command{
			names:       []string{"get-image-dir", "getimagedir"},
			optionsHelp: "[options [...]] imageNameOrID",
			usage:       "Find the image's associated data directory",
			minArgs:     1,
			maxArgs:     1,
			action: func(inv *invocation, args []string) (int, error) {
				return inv.printPath(inv.store.ImageDir(args[0]))
			},
		},
		&command{
			names:       []string{"get-image-run-dir", "getimagerundir"},
			optionsHelp: "[options [...]] imageNameOrID",
			usage:       "Find the image's associated runtime directory",
			minArgs:     1,
			maxArgs:     1,
			action: func(inv *invocation, args []string) (int, error) {
				return inv.printPath(inv.store.ImageRunDir(args[0]))
			},
		},
	)
}

func addImagesFlags(fs *pflag.FlagSet, f *cmdFlags) {
	addJSON(fs, f)
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "Only print IDs")
}

func (inv *invocation) printPath(path string, err error) (int, error) {
	if err != nil {
		return 1, err
	}
	inv.printf("%s\n", path)
	return 0, nil
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
	if inv.flags.json {
		return inv.outputJSON(img)
	}
	inv.printNamed(img.ID, img.Names)
	return 0, nil
}

// showImages prints the images that match; an argument that matches nothing is skipped
// silently and makes the exit code 1.
func showImages(inv *invocation, args []string) (int, error) {
	matched := []*core.Image{}
	for _, arg := range args {
		if img, err := inv.store.Image(arg); err == nil {
			matched = append(matched, img)
		}
	}
	if inv.flags.json {
		if code, err := inv.outputJSON(matched); err != nil {
			return code, err
		}
	} else {
		for _, img := range matched {
			inv.printf("ID: %s\n", img.ID)
			for _, name := range img.Names {
				inv.printf("Name: %s\n", name)
			}
			inv.printf("Top Layer: %s\n", img.TopLayer)
			for _, id := range img.MappedTopLayers {
				inv.printf("Top Layer: %s\n", id)
			}
			for _, d := range img.Digests {
				inv.printf("Digest: %s\n", d.String())
			}
			for _, name := range img.BigDataNames {
				inv.printf("Data: %s\n", name)
			}
			if size, err := inv.store.ImageSize(inv.ctx, img.ID); err != nil {
				inv.printf("Size unknown: %+v\n", err)
			} else {
				inv.printf("Size: %d\n", size)
			}
			if img.ReadOnly {
				inv.printf("Read Only: true\n")
			}
		}
	}
	if len(matched) != len(args) {
		return 1, nil
	}
	return 0, nil
}

func (inv *invocation) printImageList(images []core.Image) {
	for _, img := range images {
		inv.printf("%s\n", img.ID)
		if inv.flags.quiet {
			continue
		}
		for _, name := range img.Names {
			inv.printf("\tname: %s\n", name)
		}
		for _, d := range img.Digests {
			inv.printf("\tdigest: %s\n", d.String())
		}
		for _, name := range img.BigDataNames {
			inv.printf("\tdata: %s\n", name)
		}
	}
}

func listImages(inv *invocation, _ []string) (int, error) {
	images, err := inv.store.Images()
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(nilIfEmpty(images))
	}
	inv.printImageList(images)
	return 0, nil
}

// imagesByDigest validates the digest before asking the store; no match is an empty result
// (null in JSON), not an error.
func imagesByDigest(inv *invocation, args []string) (int, error) {
	d := digest.Digest(args[0])
	if err := d.Validate(); err != nil {
		inv.eprintf("%s: %v\n", args[0], err)
		return 1, nil
	}
	images, err := inv.store.ImagesByDigest(d)
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(nilIfEmpty(images))
	}
	inv.printImageList(images)
	return 0, nil
}
