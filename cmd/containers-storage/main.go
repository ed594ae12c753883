// Command containers-storage is the drop-in command line for the store in package core: every
// subcommand, flag, output line and exit code of the established containers-storage tool that
// scripts rely on (SPEC-cli.md).
//
// Lifecycle of one invocation: parse the global flags before the command name, load the
// storage.conf defaults if none of graph root, run root, driver and driver options was given,
// parse the command's own flags (which re-register every global flag, so the later value wins),
// check the argument count, open the store, run the command, close the store. The store is closed
// on every path out of run, including SIGINT and SIGTERM, so the driver plugin process never
// outlives the command.
//
// Output discipline: results go to stdout; stderr carries only errors, the lines the established
// tool writes there (status, version, delete-image), and --debug logging. Scripts merge the two
// streams and compare whole outputs.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/core"
)

// version is the CLI's version, printed by `version`. Set at build time with
// -ldflags "-X main.version=1.2.3".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes one invocation and returns its exit code. It never calls os.Exit itself except
// from the signal handler, after the store has been closed.
func run(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	inv := &invocation{argv0: argv[0], stdin: stdin, stdout: stdout, stderr: stderr}
	g := &globalFlags{unshare: isRootless()}

	gfs := newFlagSet(programName)
	g.register(gfs)
	if len(argv) < 2 {
		inv.mainUsage(gfs)
		return 1
	}
	if err := parseFlags(gfs, argv[1:]); err != nil {
		if err == errHelp {
			inv.mainUsage(gfs)
			return 0
		}
		// The established tool reports the parse error on stderr (with a hint), then
		// repeats it on stdout with the usage.
		inv.reportFlagError(err, programName)
		fmt.Fprintf(stdout, "%v while parsing arguments (1)\n", err)
		inv.mainUsage(gfs)
		return 1
	}

	// The defaults come from storage.conf only when none of the store-shaping flags was given
	// before the command; flags after the command then override single fields.
	base, err := loadDefaults(g, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%+v\n", err)
		return 1
	}

	args := gfs.Args()
	if len(args) < 1 {
		inv.mainUsage(gfs)
		return 1
	}
	name := args[0]
	cmd := lookupCommand(name)
	if cmd == nil {
		fmt.Fprintf(stdout, "%s: unrecognized command.\n", name)
		return 1
	}
	inv.name = name
	inv.cmd = cmd
	inv.flags = &cmdFlags{}

	cfs := newFlagSet(name)
	g.register(cfs)
	if cmd.addFlags != nil {
		cmd.addFlags(cfs, inv.flags)
	}
	if err := parseFlags(cfs, args[1:]); err != nil {
		if err == errHelp {
			inv.commandUsage(cfs)
			return 0
		}
		inv.reportFlagError(err, name)
		return 125
	}
	args = cfs.Args()
	if len(args) < cmd.minArgs {
		fmt.Fprintf(stdout, "%s: more arguments required.\n", name)
		inv.commandUsage(cfs)
		return 1
	}
	if cmd.maxArgs >= 0 && len(args) > cmd.maxArgs {
		fmt.Fprintf(stdout, "%s: too many arguments (%s).\n", name, args)
		inv.commandUsage(cfs)
		return 1
	}

	if g.unshare {
		if code, reexeced := reexecInUserNamespace(stderr); reexeced {
			return code
		}
	}

	logger := newLogger(g.debug, stderr)
	opts, err := effectiveOptions(base, g)
	if err != nil {
		fmt.Fprintf(stderr, "%+v\n", err)
		return 1
	}
	opts.Logger = logger
	logger.Debug("store options", "root", opts.GraphRoot, "run_root", opts.RunRoot,
		"driver", opts.Driver, "driver_options", fmt.Sprint(opts.DriverOptions))
	inv.opts = opts

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Signals are handled from before Open, which may already start the driver plugin.
	closer := newStoreCloser(logger)
	stopSignals := handleSignals(cancel, closer)
	defer stopSignals()
	store, err := core.Open(ctx, opts)
	closer.opened(store)
	if err != nil {
		fmt.Fprintf(stderr, "error initializing: %+v\n", err)
		return 1
	}
	defer closer.close()

	inv.ctx = ctx
	inv.store = store
	code, err := cmd.action(inv, args)
	if err != nil {
		fmt.Fprintf(stderr, "%+v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// newLogger returns the logger handed to the store (and through it to driver plugins, whose
// log lines are re-emitted under the plugin's name). Without --debug only errors are logged.
func newLogger(debug bool, w io.Writer) hclog.Logger {
	level := hclog.Error
	if debug {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: programName, Level: level, Output: w})
}
