package main

import (
	"github.com/spf13/pflag"
)

func init() {
	withNames := func(fs *pflag.FlagSet, f *cmdFlags) {
		addNames(fs, f, "New")
		addJSON(fs, f)
	}
	register(
		&command{
			names:       []string{"get-names", "getnames"},
			optionsHelp: "[options [...]] imageOrContainerNameOrID",
			usage:       "Get layer, image, or container name or names",
			minArgs:     1,
			maxArgs:     1,
			action:      getNames,
			addFlags:    addJSON,
		},
		&command{
			names:       []string{"add-names", "addnames"},
			optionsHelp: "[options [...]] imageOrContainerNameOrID",
			usage:       "Add layer, image, or container name or names",
			minArgs:     1,
			maxArgs:     1,
			action:      changeNames,
			addFlags:    withNames,
		},
		&command{
			names:       []string{"remove-names", "removenames"},
			optionsHelp: "[options [...]] imageOrContainerNameOrID",
			usage:       "Remove layer, image, or container name or names",
			minArgs:     1,
			maxArgs:     1,
			action:      changeNames,
			addFlags:    withNames,
		},
		&command{
			names:       []string{"set-names", "setnames"},
			optionsHelp: "[options [...]] imageOrContainerNameOrID",
			usage:       "Set layer, image, or container name or names",
			minArgs:     1,
			maxArgs:     1,
			action:      changeNames,
			addFlags:    withNames,
		},
	)
}

// getNames prints the names of a layer, image or container. Its JSON is always an array,
// [] when there are no names.
func getNames(inv *invocation, args []string) (int, error) {
	_, id, err := inv.store.Lookup(args[0])
	if err != nil {
		return 1, err
	}
	names, err := inv.store.Names(id)
	if err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON(append([]string{}, names...))
	}
	for _, n := range names {
		inv.printf("%s\n", n)
	}
	return 0, nil
}

// changeNames runs add-names, remove-names or set-names (by the command's canonical name) and,
// with -j, prints the resulting names.
func changeNames(inv *invocation, args []string) (int, error) {
	_, id, err := inv.store.Lookup(args[0])
	if err != nil {
		return 1, err
	}
	names := inv.flags.names
	switch inv.cmd.names[0] {
	case "add-names":
		err = inv.store.AddNames(id, names)
	case "remove-names":
		err = inv.store.RemoveNames(id, names)
	default:
		err = inv.store.SetNames(id, names)
	}
	if err != nil {
		return 1, err
	}
	if !inv.flags.json {
		return 0, nil
	}
	result, err := inv.store.Names(id)
	if err != nil {
		return 1, err
	}
	return inv.outputJSON(nilIfEmpty(result))
}
