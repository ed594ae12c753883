package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

func init() {
	register(
		&command{
			names:   []string{"check"},
			usage:   "Check storage consistency",
			maxArgs: 0,
			action:  check,
			addFlags: func(fs *pflag.FlagSet, f *cmdFlags) {
				addJSON(fs, f)
				fs.StringVarP(&f.maxAge, "max", "m", "24h", "Maximum allowed age for unreferenced layers")
				fs.BoolVarP(&f.repair, "repair", "r", false, "Remove damaged images and layers")
				fs.BoolVarP(&f.force, "force", "f", false, "Remove damaged containers")
				fs.BoolVarP(&f.quiet, "quick", "q", false, "Perform only quick checks")
			},
		},
		&command{
			names:    []string{"gc"},
			usage:    "Perform garbage collection",
			maxArgs:  0,
			action:   gc,
			addFlags: addJSON,
		},
	)
}

// shutdownAfter runs Shutdown(force=true) when check and gc end, as the established tool does;
// its failure is reported on stderr without changing the exit code.
func (inv *invocation) shutdownAfter() {
	if _, err := inv.store.Shutdown(inv.ctx, true); err != nil {
		inv.eprintf("shutdown: %v\n", err)
	}
}

// check verifies the store; with -r it repairs what it can (-f also removes damaged
// containers). Exit code 1 if anything was found and not repaired.
func check(inv *invocation, _ []string) (int, error) {
	defer inv.shutdownAfter()
	f := inv.flags
	repair := f.repair || f.force
	opts := core.CheckOptions{Quick: f.quiet}
	if f.maxAge != "" {
		age, err := time.ParseDuration(f.maxAge)
		if err != nil {
			return 1, err
		}
		opts.LayerUnreferencedMaximumAge = &age
	}
	report, err := inv.store.Check(inv.ctx, opts)
	if err != nil {
		return 1, err
	}
	if f.json {
		if code, err := inv.outputJSON(report); err != nil {
			return code, err
		}
	} else {
		for _, part := range []struct {
			label string
			errs  map[string][]error
		}{
			{"layer", report.Layers},
			{"read-only layer", report.ROLayers},
			{"image", report.Images},
			{"read-only image", report.ROImages},
			{"container", report.Containers},
		} {
			ids := make([]string, 0, len(part.errs))
			for id := range part.errs {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				errs := part.errs[id]
				if len(errs) > 0 {
					inv.printf("%s %s:\n", part.label, id)
				}
				for _, e := range errs {
					inv.printf(" %v\n", e)
				}
			}
		}
	}
	if !repair {
		if len(report.Layers) > 0 || len(report.ROLayers) > 0 || len(report.Images) > 0 || len(report.ROImages) > 0 || len(report.Containers) > 0 {
			return 1, fmt.Errorf("%d layer errors, %d read-only layer errors, %d image errors, %d read-only image errors, %d container errors",
				len(report.Layers), len(report.ROLayers), len(report.Images), len(report.ROImages), len(report.Containers))
		}
		return 0, nil
	}
	if errs := inv.store.Repair(inv.ctx, report, core.RepairOptions{RemoveContainers: f.force}); len(errs) != 0 {
		if f.json {
			if code, err := inv.outputJSON(errs); err != nil {
				return code, err
			}
		} else {
			for _, e := range errs {
				inv.eprintf("%v\n", e)
			}
		}
		return 1, errs[0]
	}
	if len(report.ROLayers) > 0 || len(report.ROImages) > 0 || (!f.force && len(report.Containers) > 0) {
		if f.force {
			return 1, fmt.Errorf("%d read-only layer errors, %d read-only image errors", len(report.ROLayers), len(report.ROImages))
		}
		return 1, fmt.Errorf("%d read-only layer errors, %d read-only image errors, %d container errors",
			len(report.ROLayers), len(report.ROImages), len(report.Containers))
	}
	return 0, nil
}

// gc removes leftovers of items that have no record, then shuts down as check does.
func gc(inv *invocation, _ []string) (int, error) {
	defer inv.shutdownAfter()
	if err := inv.store.GC(inv.ctx); err != nil {
		return 1, err
	}
	if inv.flags.json {
		return inv.outputJSON("")
	}
	return 0, nil
}
