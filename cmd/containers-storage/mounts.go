package main

import (
	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		&command{
			names:       []string{"mount"},
			optionsHelp: "[options [...]] LayerOrContainerNameOrID",
			usage:       "Mount a layer or container",
			minArgs:     1,
			maxArgs:     -1,
			action:      mount,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				fs.StringVarP(&f.mountOpts, "opt", "o", "", "Mount Options")
				fs.StringVarP(&f.label, "label", "l", "", "Mount Label")
				fs.BoolVarP(&f.readOnly, "read-only", "r", false, "Mount image readonly")
				fs.BoolVar(&f.readOnly, "ro", false, "Mount image readonly")
				addJSON(fs, f)
			},
		},
		&command{
			names:       []string{"unmount", "umount"},
			optionsHelp: "LayerOrContainerNameOrID",
			usage:       "Unmount an image, layer or container",
			minArgs:     1,
			maxArgs:     -1,
			action:      unmount,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addJSON(fs, f)
				fs.BoolVarP(&f.force, "force", "f", false, "Force the umount")
			},
		},
		&command{
			names:       []string{"mounted"},
			optionsHelp: "LayerOrContainerNameOrID",
			usage:       "Check if a file system is mounted",
			minArgs:     1,
			maxArgs:     -1,
			action:      mounted,
			addFlags:    addJSON,
		},
	)
}

type mountResult struct {
	ID         string `json:"id"`
	MountPoint string `json:"mountpoint"`
	Error      string `json:"error"`
}

type idError struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// mount mounts each argument (a layer or a container; with -r an image, read-only) and prints
// one mount point per argument, an empty line for a failure whose error goes to stderr. The -o
// value is accepted and not used, as in the established tool.
func mount(inv *invocation, args []string) (int, error) {
	results := []mountResult{}
	failed := false
	opts := core.MountOptions{MountLabel: inv.flags.label}
	for _, arg := range args {
		var path string
		var err error
		if inv.flags.readOnly {
			path, err = inv.store.MountImage(inv.ctx, arg, opts)
		} else {
			path, err = inv.store.Mount(inv.ctx, arg, opts)
		}
		failed = failed || err != nil
		results = append(results, mountResult{ID: arg, MountPoint: path, Error: errorText(err)})
	}
	return inv.report(results, failed, func() {
		for _, r := range results {
			if r.Error != "" {
				inv.eprintf("%s while mounting %s\n", r.Error, r.ID)
			}
			inv.printf("%s\n", r.MountPoint)
		}
	})
}

// unmount drops one reference per argument (all of them with -f) and prints
// "ID mountpoint unmounted" when the last one is gone (in JSON mode too). When the layer or
// container unmount fails, an image unmount is tried; if that fails too, the first error is
// reported.
func unmount(inv *invocation, args []string) (int, error) {
	return inv.eachArg(args, "%s while unmounting %s\n", func(arg string) error {
		still, err := inv.store.Unmount(inv.ctx, arg, inv.flags.force)
		if err != nil {
			if _, imgErr := inv.store.UnmountImage(inv.ctx, arg, inv.flags.force); imgErr == nil {
				return nil
			}
			return err
		}
		if !still {
			inv.printf("%s mountpoint unmounted\n", arg)
		}
		return nil
	})
}

// mounted prints "ID mounted" for each argument whose mount count is above zero (also in JSON
// mode, before the JSON).
func mounted(inv *invocation, args []string) (int, error) {
	return inv.eachArg(args, "%s checking if %s is mounted\n", func(arg string) error {
		count, err := inv.store.Mounted(arg)
		if err == nil && count > 0 {
			inv.printf("%s mounted\n", arg)
		}
		return err
	})
}

// eachArg runs do on every argument in turn and then reports a list of {id, error} in JSON
// mode, or each failure on stderr through format (error text, then argument). Exit code 1 if
// any failed.
func (inv *invocation) eachArg(args []string, format string, do func(arg string) error) (int, error) {
	results := []idError{}
	failed := false
	for _, arg := range args {
		err := do(arg)
		failed = failed || err != nil
		results = append(results, idError{ID: arg, Error: errorText(err)})
	}
	return inv.report(results, failed, func() {
		for _, r := range results {
			if r.Error != "" {
				inv.eprintf(format, r.Error, r.ID)
			}
		}
	})
}
