package main

import (
	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		&command{
			names:       []string{"create-container", "createcontainer"},
			optionsHelp: "[options [...]] parentImageNameOrID",
			usage:       "Create a new container from an image",
			minArgs:     1,
			maxArgs:     1,
			action:      createContainer,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addNames(fs, f, "Container")
				fs.StringVarP(&f.id, "id", "i", "", "Container ID")
				fs.StringVarP(&f.metadata, "metadata", "m", "", "Metadata")
				fs.StringVarP(&f.metadataFile, "metadata-file", "f", "", "Metadata File")
				fs.BoolVar(&f.volatile, "volatile", false, "Mark as volatile")
				addJSON(fs, f)
				addIDMapFlags(fs, f)
			},
		},
		&command{
			names:       []string{"container"},
			optionsHelp: "[options [...]] containerNameOrID [...]",
			usage:       "Examine a container",
			minArgs:     1,
			maxArgs:     -1,
			action:      showContainers,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"containers"},
			optionsHelp: "[options [...]]",
			usage:       "List containers",
			maxArgs:     0,
			action:      listContainers,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"container-parent-owners"},
			optionsHelp: "[options [...]] containerNameOrID [...]",
			usage:       "Compute the set of unmapped parent UIDs and GIDs of the container",
			minArgs:     1,
			maxArgs:     -1,
			action:      containerParentOwners,
			addFlags:    addJSON,
		},
		dirCommand([]string{"get-container-dir", "getcontainerdir"}, "containerNameOrID",
			"Find the container's associated data directory", (*core.Store).ContainerDir),
		dirCommand([]string{"get-container-run-dir", "getcontainerrundir"}, "containerNameOrID",
			"Find the container's associated runtime directory", (*core.Store).ContainerRunDir),
	)
}

// createContainer creates a container from args[0], an image reference or "" for a container
// without an image.
func createContainer(inv *invocation, args []string) (int, error) {
	md, err := inv.flags.readMetadata()
	if err != nil {
		return 1, err
	}
	if err := inv.flags.idmap.check("create container"); err != nil {
		return 1, err
	}
	c, err := inv.store.CreateContainer(inv.ctx, args[0], core.ContainerOptions{
		ID:       inv.flags.id,
		Names:    inv.flags.names,
		Metadata: md,
		Volatile: inv.flags.volatile,
	})
	if err != nil {
		return 1, err
	}
	return inv.printCreated(c, c.ID, c.Names)
}

// showContainers prints the containers that match; an argument that matches nothing is
// skipped silently and makes the exit code 1.
func showContainers(inv *invocation, args []string) (int, error) {
	images, err := inv.store.Images()
	if err != nil {
		return 1, err
	}
	matched := matchAll(args, inv.store.Container)
	return inv.report(matched, len(matched) != len(args), func() {
		for _, c := range matched {
			inv.printf("ID: %s\n", c.ID)
			inv.printEach("Name: %s\n", c.Names)
			inv.printf("Image: %s\n", c.ImageID)
			for _, img := range images {
				if img.ID == c.ImageID {
					inv.printEach("Image name: %s\n", img.Names)
					break
				}
			}
			if size, err := inv.store.ContainerSize(inv.ctx, c.ID); err != nil {
				inv.printf("Size unknown: %+v\n", err)
			} else {
				inv.printf("Size: %d\n", size)
			}
			inv.printf("Layer: %s\n", c.LayerID)
			inv.printEach("Data: %s\n", c.BigDataNames)
		}
	})
}

func listContainers(inv *invocation, _ []string) (int, error) {
	containers, err := inv.store.Containers()
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(nilIfEmpty(containers))
	}
	for _, c := range containers {
		inv.printf("%s\n", c.ID)
		inv.printEach("\tname: %s\n", c.Names)
		inv.printEach("\tdata: %s\n", c.BigDataNames)
	}
	return 0, nil
}

// containerParentOwners always prints both lists, unlike layer-parent-owners.
func containerParentOwners(inv *invocation, args []string) (int, error) {
	var ids []string
	for _, c := range matchAll(args, inv.store.Container) {
		ids = append(ids, c.ID)
	}
	return inv.printParentOwners(args, ids, inv.store.ContainerParentOwners, "ContainerParentOwner", true)
}
