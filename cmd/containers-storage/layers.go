package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		&command{
			names:       []string{"layers"},
			optionsHelp: "[options [...]]",
			usage:       "List layers",
			maxArgs:     0,
			action:      listLayers,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.BoolVarP(&f.tree, "tree", "t", false, "Use a tree")
				fs.BoolVarP(&f.quiet, "quick", "q", false, "Just the IDs")
				addJSON(fs, f)
			},
		},
		&command{
			names:       []string{"storage-layers"},
			optionsHelp: "[options [...]]",
			usage:       "List storage layers",
			maxArgs:     0,
			action:      storageLayers,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"layer"},
			optionsHelp: "[options [...]] layerNameOrID [...]",
			usage:       "Examine a layer",
			minArgs:     1,
			maxArgs:     -1,
			action:      showLayers,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"layer-parent-owners"},
			optionsHelp: "[options [...]] layerNameOrID [...]",
			usage:       "Compute the set of unmapped parent UIDs and GIDs of the layer",
			minArgs:     1,
			maxArgs:     -1,
			action:      layerParentOwners,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"create-layer", "createlayer"},
			optionsHelp: "[options [...]] [parentLayerNameOrID]",
			usage:       "Create a new layer",
			maxArgs:     1,
			action:      layerCreator("create layer", false),
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addLayerCreateFlags(fs, f)
				addNames(fs, f, "Layer")
			},
		},
		&command{
			names:       []string{"import-layer", "importlayer"},
			optionsHelp: "[options [...]] [parentLayerNameOrID]",
			usage:       "Import a new layer",
			maxArgs:     1,
			action:      layerCreator("import layer", true),
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addLayerCreateFlags(fs, f)
				addNames(fs, f, "Layer")
				fs.StringVarP(&f.file, "file", "f", "", "Read from file instead of stdin")
			},
		},
		&command{
			names:       []string{"create-storage-layer"},
			optionsHelp: "[options [...]] [parentLayerNameOrID]",
			usage:       "Create a new layer only in the storage driver",
			maxArgs:     1,
			action:      createStorageLayer,
			addFlags:    addLayerCreateFlags,
		},
	)
}

func addLayerCreateFlags(fs *pflag.FlagSet, f *cmdFlags) {
	fs.StringVarP(&f.label, "label", "l", "", "Mount Label")
	fs.StringVarP(&f.id, "id", "i", "", "Layer ID")
	fs.BoolVarP(&f.readOnly, "readonly", "r", false, "Mark as read-only")
	addJSON(fs, f)
	addIDMapFlags(fs, f)
}

func listLayers(inv *invocation, _ []string) (int, error) {
	layers, err := inv.store.Layers()
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(nilIfEmpty(layers))
	}
	// Which images and container use each layer. Failing to list them only leaves the
	// annotations out, as in the established tool.
	imagesByLayer := map[string][]core.Image{}
	if images, err := inv.store.Images(); err == nil {
		for _, img := range images {
			for _, id := range append([]string{img.TopLayer}, img.MappedTopLayers...) {
				imagesByLayer[id] = append(imagesByLayer[id], img)
			}
		}
	}
	containerByLayer := map[string]core.Container{}
	if containers, err := inv.store.Containers(); err == nil {
		for _, c := range containers {
			containerByLayer[c.LayerID] = c
		}
	}

	if inv.flags.tree {
		var nodes []treeNode
		for _, l := range layers {
			n := treeNode{parent: l.Parent, id: l.ID}
			if n.parent == "" {
				n.parent = "(base)"
			}
			for _, name := range l.Names {
				n.notes = append(n.notes, "name: "+name)
			}
			if l.MountPoint != "" {
				n.notes = append(n.notes, "mount: "+l.MountPoint)
			}
			for _, img := range imagesByLayer[l.ID] {
				n.notes = append(n.notes, "image: "+img.ID)
				for _, name := range img.Names {
					n.notes = append(n.notes, "image name: "+name)
				}
			}
			if c, ok := containerByLayer[l.ID]; ok {
				n.notes = append(n.notes, "container: "+c.ID)
				for _, name := range c.Names {
					n.notes = append(n.notes, "container name: "+name)
				}
			}
			nodes = append(nodes, n)
		}
		printTree(inv.stdout, nodes)
		return 0, nil
	}

	for _, l := range layers {
		inv.printf("%s\n", l.ID)
		if inv.flags.quiet {
			continue
		}
		inv.printEach("\tname: %s\n", l.Names)
		for _, img := range imagesByLayer[l.ID] {
			inv.printf("\timage: %s\n", img.ID)
			inv.printEach("\t\tname: %s\n", img.Names)
		}
		if c, ok := containerByLayer[l.ID]; ok {
			inv.printf("\tcontainer: %s\n", c.ID)
			inv.printEach("\t\tname: %s\n", c.Names)
		}
	}
	return 0, nil
}

func storageLayers(inv *invocation, _ []string) (int, error) {
	return inv.printList(inv.store.StorageLayers(inv.ctx))
}

// showLayers prints the layers that match; an argument that matches nothing is skipped
// silently and makes the exit code 1.
func showLayers(inv *invocation, args []string) (int, error) {
	matched := matchAll(args, inv.store.Layer)
	return inv.report(matched, len(matched) != len(args), func() {
		for _, l := range matched {
			inv.printf("ID: %s\n", l.ID)
			for _, m := range l.UIDMap {
				inv.printf("UID mapping: (container=%d, host=%d, size=%d)\n", m.ContainerID, m.HostID, m.Size)
			}
			for _, m := range l.GIDMap {
				inv.printf("GID mapping: (container=%d, host=%d, size=%d)\n", m.ContainerID, m.HostID, m.Size)
			}
			if l.Parent != "" {
				inv.printf("Parent: %s\n", l.Parent)
			}
			inv.printEach("Name: %s\n", l.Names)
			if l.ReadOnly {
				inv.printf("Read Only: true\n")
			}
		}
	})
}

// parentOwners is the JSON shape of layer-parent-owners and container-parent-owners.
type parentOwners struct {
	ID   string
	UIDs []int
	GIDs []int
}

func layerParentOwners(inv *invocation, args []string) (int, error) {
	var ids []string
	for _, l := range matchAll(args, inv.store.Layer) {
		ids = append(ids, l.ID)
	}
	return inv.printParentOwners(args, ids, inv.store.LayerParentOwners, "LayerParentOwner", false)
}

// printParentOwners ends layer-parent-owners and container-parent-owners, given the IDs the
// arguments matched: per ID one line of JSON, or the lines "ID:", "UIDs:" and "GIDs:" (an empty
// list's line only with keepEmpty). The first failure of owners ends the command, its error
// prefixed with errPrefix as in the established tool; an unmatched argument makes the exit
// code 1.
func (inv *invocation) printParentOwners(args, ids []string, owners func(id string) (uids, gids []int, err error), errPrefix string, keepEmpty bool) (int, error) {
	for _, id := range ids {
		uids, gids, err := owners(id)
		if err != nil {
			return 1, fmt.Errorf("%s: %w", errPrefix, err)
		}
		if inv.flags.json {
			if code, err := inv.outputJSON(parentOwners{ID: id, UIDs: uids, GIDs: gids}); err != nil {
				return code, err
			}
			continue
		}
		inv.printf("ID: %s\n", id)
		if keepEmpty || len(uids) > 0 {
			inv.printf("UIDs: %v\n", uids)
		}
		if keepEmpty || len(gids) > 0 {
			inv.printf("GIDs: %v\n", gids)
		}
	}
	if len(ids) != len(args) {
		return 1, nil
	}
	return 0, nil
}

func (inv *invocation) layerOptions(args []string) core.LayerOptions {
	o := core.LayerOptions{
		ID:         inv.flags.id,
		Names:      inv.flags.names,
		MountLabel: inv.flags.label,
		ReadOnly:   inv.flags.readOnly,
	}
	if len(args) > 0 {
		o.Parent = args[0]
	}
	return o
}

// layerCreator is the action of create-layer and (withDiff) import-layer, which applies the
// diff read from the -f file or stdin; op names the command in the ID-mapping error.
func layerCreator(op string, withDiff bool) func(*invocation, []string) (int, error) {
	return func(inv *invocation, args []string) (int, error) {
		if err := inv.flags.idmap.check(op); err != nil {
			return 1, err
		}
		var diff io.Reader
		if withDiff {
			in, err := inv.input()
			if err != nil {
				return 1, err
			}
			defer in.Close()
			diff = in
		}
		l, err := inv.store.CreateLayer(inv.ctx, inv.layerOptions(args), diff)
		if err != nil {
			return 1, err
		}
		return inv.printCreated(l, l.ID, l.Names)
	}
}

func createStorageLayer(inv *invocation, args []string) (int, error) {
	if err := inv.flags.idmap.check("create storage layer"); err != nil {
		return 1, err
	}
	id, err := inv.store.CreateStorageLayer(inv.ctx, inv.layerOptions(args))
	if err != nil {
		return 1, err
	}
	return inv.printCreated(id, id, nil)
}
