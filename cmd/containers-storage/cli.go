package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
)

// programName is the name the usage texts use, whatever argv[0] is.
const programName = "containers-storage"

// command is one entry of the command table. maxArgs < 0 means no upper limit.
type command struct {
	names       []string // the first is the canonical name, the others are aliases
	optionsHelp string
	usage       string
	minArgs     int
	maxArgs     int
	addFlags    func(fs *pflag.FlagSet, f *cmdFlags)
	action      func(inv *invocation, args []string) (int, error)
}

// commands is the command table, filled by the init functions of the per-family files.
var commands []*command

func register(cmds ...*command) { commands = append(commands, cmds...) }

func lookupCommand(name string) *command {
	for _, c := range commands {
		for _, n := range c.names {
			if n == name {
				return c
			}
		}
	}
	return nil
}

// invocation is everything a command's action works with: the opened store, the effective
// store options, the parsed command flags and the standard streams.
type invocation struct {
	ctx    context.Context
	store  *core.Store
	opts   core.Options
	flags  *cmdFlags
	name   string // the command name as typed (may be an alias)
	cmd    *command
	argv0  string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// globalFlags are the store-shaping flags, registered both on the top-level flag set and on
// every command's flag set, bound to the same variables, so the later occurrence wins and
// --storage-opt keeps accumulating.
type globalFlags struct {
	graph       string
	run         string
	imageStore  string
	transient   bool
	driver      string
	storageOpts []string
	debug       bool
	unshare     bool
}

func (g *globalFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&g.run, "run", "R", g.run, "Root of the runtime state tree")
	fs.StringVarP(&g.graph, "graph", "g", g.graph, "Root of the storage tree")
	fs.StringVar(&g.imageStore, "image-store", g.imageStore, "Root of the separate image store")
	fs.BoolVar(&g.transient, "transient-store", g.transient, "Transient store")
	fs.StringVarP(&g.driver, "storage-driver", "s", g.driver, "Storage driver to use ($STORAGE_DRIVER)")
	fs.Var(&listValue{p: &g.storageOpts}, "storage-opt", "Set storage driver options ($STORAGE_OPTS)")
	fs.BoolVarP(&g.debug, "debug", "D", g.debug, "Print debugging information")
	fs.BoolVarP(&g.unshare, "unshare", "U", g.unshare, fmt.Sprintf("Run in a user namespace (default %t)", isRootless()))
}

// nothingGiven reports whether none of the flags that select the store was given, the
// condition under which the storage.conf defaults are used.
func (g *globalFlags) nothingGiven() bool {
	return g.graph == "" && g.run == "" && g.driver == "" && len(g.storageOpts) == 0
}

// listValue is a repeatable string flag that always appends, also across the two parsing
// passes (pflag's own string arrays reset on the first Set of each flag set).
type listValue struct{ p *[]string }

func (l *listValue) String() string {
	if l.p == nil || len(*l.p) == 0 {
		return "[]"
	}
	return "[" + strings.Join(*l.p, " ") + "]"
}
func (l *listValue) Set(v string) error { *l.p = append(*l.p, v); return nil }
func (l *listValue) Type() string       { return "value" }

// newFlagSet returns a flag set that stops at the first positional argument and reports
// errors to its caller instead of printing them.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = true
	return fs
}

// errHelp is returned by parseFlags for -h / --help.
var errHelp = errors.New("help requested")

// flagError is a command-line error in the established tool's words.
type flagError struct{ msg string }

func (e *flagError) Error() string { return e.msg }

func notDefined(spelled string) error {
	return &flagError{"flag provided but not defined: " + spelled}
}

// parseFlags parses args with fs, first checking the flag words with the established tool's
// rules: a single-dash word with several letters is a group of one-letter flags in which every
// letter but the last must be a boolean (so "-qj" works and "-run" or "-graph" is rejected,
// where pflag alone would read "-graph" as -g raph); unknown flags are reported as
// "flag provided but not defined: -x" / "--name".
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := checkFlagWords(fs, args); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return translatePflagError(err)
	}
	return nil
}

func checkFlagWords(fs *pflag.FlagSet, args []string) error {
	takesValue := func(f *pflag.Flag) bool { return f.NoOptDefVal == "" }
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return nil // end of the flags: pflag stops here too
		}
		if a[1] == '-' {
			name, _, hasValue := strings.Cut(a[2:], "=")
			f := fs.Lookup(name)
			if f == nil {
				if name == "help" {
					return errHelp
				}
				return notDefined("--" + name)
			}
			if takesValue(f) && !hasValue {
				i++
			}
			continue
		}
		letters, _, hasValue := strings.Cut(a[1:], "=")
		if letters == "" {
			return &flagError{"bad flag syntax: " + a}
		}
		for j, c := range letters {
			f := fs.ShorthandLookup(string(c))
			if f == nil {
				if c == 'h' && len(letters) == 1 {
					return errHelp
				}
				return notDefined("-" + letters)
			}
			if takesValue(f) {
				if j != len(letters)-1 {
					return notDefined("-" + letters)
				}
				if !hasValue {
					i++
				}
			}
		}
	}
	return nil
}

// translatePflagError rewrites the errors pflag can still return after checkFlagWords into the
// established tool's wording.
func translatePflagError(err error) error {
	var vr *pflag.ValueRequiredError
	var iv *pflag.InvalidValueError
	var ne *pflag.NotExistError
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return errHelp
	case errors.As(err, &vr):
		if s := vr.GetSpecifiedShortnames(); s != "" {
			return &flagError{"flag needs an argument: -" + vr.GetSpecifiedName()}
		}
		return &flagError{"flag needs an argument: --" + vr.GetSpecifiedName()}
	case errors.As(err, &iv):
		return &flagError{fmt.Sprintf("invalid value %q for flag --%s: %v", iv.GetValue(), iv.GetFlag().Name, errors.Unwrap(iv))}
	case errors.As(err, &ne):
		if s := ne.GetSpecifiedShortnames(); s != "" {
			return notDefined("-" + s)
		}
		return notDefined("--" + ne.GetSpecifiedName())
	}
	return &flagError{err.Error()}
}

// reportFlagError prints a flag error the way the established tool's flag package does, on
// stderr, with a pointer to the help of the flag set named setName.
func (inv *invocation) reportFlagError(err error, setName string) {
	fmt.Fprintln(inv.stderr, err)
	if inv.argv0 == setName {
		fmt.Fprintf(inv.stderr, "See '%s --help'.\n", inv.argv0)
	} else {
		fmt.Fprintf(inv.stderr, "See '%s %s --help'.\n", inv.argv0, setName)
	}
}

// mainUsage prints the command list to stdout and the global flags to stderr, as the
// established tool does.
func (inv *invocation) mainUsage(fs *pflag.FlagSet) {
	fmt.Fprintf(inv.stdout, "Usage: %s command [options [...]]\n\n", programName)
	fmt.Fprintf(inv.stdout, "Commands:\n\n")
	sorted := append([]*command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].names[0] < sorted[j].names[0] })
	for _, c := range sorted {
		fmt.Fprintf(inv.stdout, "  %-30s%s\n", c.names[0], c.usage)
	}
	fmt.Fprintf(inv.stdout, "\nOptions:\n")
	fmt.Fprint(inv.stderr, fs.FlagUsages())
}

// commandUsage prints a command's usage to stdout and its flags to stderr.
func (inv *invocation) commandUsage(fs *pflag.FlagSet) {
	fmt.Fprintf(inv.stdout, "Usage: %s %s %s\n\n", programName, inv.name, inv.cmd.optionsHelp)
	fmt.Fprintf(inv.stdout, "%s\n", inv.cmd.usage)
	fmt.Fprintf(inv.stdout, "\nOptions:\n")
	fmt.Fprint(inv.stderr, fs.FlagUsages())
}
