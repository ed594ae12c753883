package main

import (
	"fmt"

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
		&command{
			names:       []string{"get-container-dir", "getcontainerdir"},
			optionsHelp: "[options [...]] containerNameOrID",
			usage:       "Find the container's associated data directory",
			minArgs:     1,
			maxArgs:     1,
			action: func(inv *invocation, args []string) (int, error) {
				return inv.printPath(inv.store.ContainerDir(args[0]))
			},
		},
		&command{
			names:       []string{"get-container-run-dir", "getcontainerrundir"},
			optionsHelp: "[options [...]] containerNameOrID",
			usage:       "Find the container's associated runtime directory",
			minArgs:     1,
			maxArgs:     1,
			action: func(inv *invocation, args []string) (int, error) {
				return inv.printPath(inv.store.ContainerRunDir(args[0]))
			},
		},
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
	if inv.flags.json {
		return inv.outputJSON(c)
	}
	inv.printNamed(c.ID, c.Names)
	return 0, nil
}

// showContainers prints the containers that match; an argument that matches nothing is
// skipped silently and makes the exit code 1.
func showContainers(inv *invocation, args []string) (int, error) {
	images, err := inv.store.Images()
	if err != nil {
		return 1, err
	}
	matched := []*core.Container{}
	for _, arg := range args {
		if c, err := inv.store.Container(arg); err == nil {
			matched = append(matched, c)
		}
	}
	if inv.flags.json {
		if code, err := inv.outputJSON(matched); err != nil {
			return code, err
		}
	} else {
		for _, c := range matched {
			inv.printf("ID: %s\n", c.ID)
			for _, name := range c.Names {
				inv.printf("Name: %s\n", name)
			}
			inv.printf("Image: %s\n", c.ImageID)
			for _, img := range images {
				if img.ID == c.ImageID {
					for _, name := range img.Names {
						inv.printf("Image name: %s\n", name)
					}
					break
				}
			}
			if size, err := inv.store.ContainerSize(inv.ctx, c.ID); err != nil {
				inv.printf("Size unknown: %+v\n", err)
			} else {
				inv.printf("Size: %d\n", size)
			}
			inv.printf("Layer: %s\n", c.LayerID)
			for _, name := range c.BigDataNames {
				inv.printf("Data: %s\n", name)
			}
		}
	}
	if len(matched) != len(args) {
		return 1, nil
	}
	return 0, nil
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
		for _, name := range c.Names {
			inv.printf("\tname: %s\n", name)
		}
		for _, name := range c.BigDataNames {
			inv.printf("\tdata: %s\n", name)
		}
	}
	return 0, nil
}

// containerParentOwners always prints both lists, unlike layer-parent-owners.
func containerParentOwners(inv *invocation, args []string) (int, error) {
	matched := []*core.Container{}
	for _, arg := range args {
		if c, err := inv.store.Container(arg); err == nil {
			matched = append(matched, c)
		}
	}
	for _, c := range matched {
		uids, gids, err := inv.store.ContainerParentOwners(c.ID)
		if err != nil {
			return 1, fmt.Errorf("ContainerParentOwner: %w", err)
		}
		if inv.flags.json {
			if code, err := inv.outputJSON(parentOwners{ID: c.ID, UIDs: uids, GIDs: gids}); err != nil {
				return code, err
			}
			continue
		}
		inv.printf("ID: %s\n", c.ID)
		inv.printf("UIDs: %v\n", uids)
		inv.printf("GIDs: %v\n", gids)
	}
	if len(matched) != len(args) {
		return 1, nil
	}
	return 0, nil
}
