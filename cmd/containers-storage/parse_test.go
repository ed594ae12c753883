package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseErrors covers the command-line errors of SPEC-cli §1: their exit codes, texts and
// streams.
func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	g, r := filepath.Join(dir, "g"), filepath.Join(dir, "r")
	store := []string{"-g", g, "-R", r, "-s", "vfs"}
	with := func(a ...string) []string { return append(append([]string(nil), store...), a...) }

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // lines the stdout must start with
		stderr     []string // lines the stderr must start with ("" = must be empty)
		stderrNone bool
	}{
		{name: "no arguments", args: nil, code: 1, stdout: []string{"Usage: containers-storage command [options [...]]", "", "Commands:"}},
		{name: "only global flags", args: store, code: 1, stdout: []string{"Usage: containers-storage command [options [...]]"}},
		{name: "unknown command", args: with("frobnicate"), code: 1, stdout: []string{"frobnicate: unrecognized command."}, stderrNone: true},
		{
			name: "unknown short flag before the command", args: append([]string{"-x"}, with("layers")...), code: 1,
			stdout: []string{"flag provided but not defined: -x while parsing arguments (1)", "Usage: containers-storage command [options [...]]"},
			stderr: []string{"flag provided but not defined: -x", "See '" + cliBin + " containers-storage --help'."},
		},
		{
			name: "unknown long flag before the command", args: append([]string{"--option"}, with("layers")...), code: 1,
			stdout: []string{"flag provided but not defined: --option while parsing arguments (1)"},
			stderr: []string{"flag provided but not defined: --option"},
		},
		{
			name: "single-dash long option before the command", args: []string{"-run", r, "-g", g, "layers"}, code: 1,
			stdout: []string{"flag provided but not defined: -run while parsing arguments (1)"},
		},
		{
			name: "single-dash long option whose first letter takes a value", args: []string{"-graph", g, "layers"}, code: 1,
			stdout: []string{"flag provided but not defined: -graph while parsing arguments (1)"},
		},
		{
			name: "unknown flag after the command", args: with("mount", "--option", "nosuid", "x"), code: 125,
			stderr: []string{"flag provided but not defined: --option", "See '" + cliBin + " mount --help'."},
		},
		{
			name: "unknown short flag after the command", args: with("layers", "-z"), code: 125,
			stderr: []string{"flag provided but not defined: -z", "See '" + cliBin + " layers --help'."},
		},
		{
			name: "single-dash long option after the command", args: with("layers", "-json"), code: 125,
			stderr: []string{"flag provided but not defined: -json"},
		},
		{
			name: "flag value missing", args: with("create-layer", "--id"), code: 125,
			stderr: []string{"flag needs an argument: --id"},
		},
		{
			name: "bad boolean value", args: with("layers", "--json=maybe"), code: 125,
			stderr: []string{`invalid value "maybe" for flag --json: `},
		},
		{
			name: "too few arguments", args: with("layer"), code: 1,
			stdout: []string{"layer: more arguments required.", "Usage: containers-storage layer [options [...]] layerNameOrID [...]", "", "Examine a layer"},
		},
		{
			name: "too few arguments (alias)", args: with("getimagedata", "x"), code: 1,
			stdout: []string{"getimagedata: more arguments required.", "Usage: containers-storage getimagedata "},
		},
		{
			name: "too many arguments", args: with("layers", "a", "b"), code: 1,
			stdout: []string{"layers: too many arguments ([a b]).", "Usage: containers-storage layers [options [...]]"},
		},
		{
			name: "too many arguments for a one-argument command", args: with("get-names", "a", "b"), code: 1,
			stdout: []string{"get-names: too many arguments ([a b])."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t, runOpts{}, tt.args...)
			if res.code != tt.code {
				t.Fatalf("exit code %d, want %d\n%v", res.code, tt.code, res)
			}
			startsWith(t, "stdout", res.stdout, tt.stdout)
			if tt.stderrNone && res.stderr != "" {
				t.Fatalf("stderr not empty: %q", res.stderr)
			}
			startsWith(t, "stderr", res.stderr, tt.stderr)
		})
	}
	// None of these runs got as far as opening the store.
	for _, d := range []string{g, r} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s was created by a command line that should have been rejected", d)
		}
	}
}

func startsWith(t *testing.T, what, got string, want []string) {
	t.Helper()
	g := lines(got)
	if len(g) < len(want) {
		t.Fatalf("%s has %d lines, want at least %d: %q", what, len(g), len(want), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(g[i], w) || (w == "" && g[i] != "") {
			t.Fatalf("%s line %d = %q, want %q", what, i+1, g[i], w)
		}
	}
}

// TestUsageListsEveryCommand checks that the command list printed without arguments names every
// command once, with the established spacing, and that the flag list goes to stderr.
func TestUsageListsEveryCommand(t *testing.T) {
	res := runCLI(t, runOpts{})
	if res.code != 1 {
		t.Fatalf("exit %d, want 1", res.code)
	}
	for _, c := range commands {
		want := "  " + padRight(c.names[0], 30) + c.usage + "\n"
		if strings.Count(res.stdout, want) != 1 {
			t.Errorf("usage lacks %q", want)
		}
	}
	for _, flag := range []string{"--graph", "--run", "--storage-driver", "--storage-opt", "--image-store", "--transient-store", "--debug", "--unshare"} {
		if !strings.Contains(res.stderr, flag) {
			t.Errorf("flag list on stderr lacks %s: %q", flag, res.stderr)
		}
	}
}

func padRight(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}

// TestHelp: --help before or after the command prints the usage and succeeds.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"layers", "--help"}, {"-g", t.TempDir(), "layers", "-h"}} {
		res := runCLI(t, runOpts{}, args...)
		if res.code != 0 || !strings.HasPrefix(res.stdout, "Usage: containers-storage ") {
			t.Errorf("%v: %v", args, res)
		}
	}
}

// configOf runs `config` with args and decodes its JSON.
func configOf(t *testing.T, o runOpts, args ...string) storeOptionsJSON {
	t.Helper()
	res := runCLI(t, o, append(args, "config")...)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("%v config: %v", args, res)
	}
	var c storeOptionsJSON
	if err := json.Unmarshal([]byte(res.stdout), &c); err != nil {
		t.Fatalf("config output %q: %v", res.stdout, err)
	}
	if strings.Count(res.stdout, "\n") != 1 {
		t.Fatalf("config output is not one line: %q", res.stdout)
	}
	return c
}

// TestStoreOptions covers where the store options come from: storage.conf only when no store
// flag comes before the command, a missing root from the configuration, later flags winning,
// --storage-opt accumulating, relative roots made absolute, and $STORAGE_DRIVER/$STORAGE_OPTS.
func TestStoreOptions(t *testing.T) {
	dir := t.TempDir()
	shutdownStoresUnder(t, dir)
	confGraph, confRun := filepath.Join(dir, "conf-graph"), filepath.Join(dir, "conf-run")
	conf := filepath.Join(dir, "storage.conf")
	body := "[storage]\ndriver = \"vfs\"\ngraphroot = \"" + confGraph + "\"\nrunroot = \"" + confRun + "\"\n" +
		"[storage.options.vfs]\nignore_chown_errors = \"true\"\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	env := runOpts{env: []string{"CONTAINERS_STORAGE_CONF=" + conf}}
	g1, g2, r1 := filepath.Join(dir, "g1"), filepath.Join(dir, "g2"), filepath.Join(dir, "r1")

	c := configOf(t, env)
	if c.GraphRoot != confGraph || c.RunRoot != confRun || c.Driver != "vfs" {
		t.Errorf("defaults: got %+v, want the configured roots and driver", c)
	}
	configured := c.DriverOptions

	// A root before the command: no configured driver or options; the other root is the
	// configured one.
	c = configOf(t, env, "-g", g1)
	if c.GraphRoot != g1 || c.RunRoot != confRun || c.Driver != "" || len(c.DriverOptions) != 0 {
		t.Errorf("-g before the command: got %+v", c)
	}
	c = configOf(t, env, "-R", r1)
	if c.GraphRoot != confGraph || c.RunRoot != r1 {
		t.Errorf("-R before the command: got %+v", c)
	}

	// Flags after the command override single fields of the configuration.
	res := runCLI(t, env, "config", "-g", g2)
	var after storeOptionsJSON
	if err := json.Unmarshal([]byte(res.stdout), &after); err != nil || res.code != 0 {
		t.Fatalf("config -g: %v", res)
	}
	if after.GraphRoot != g2 || after.RunRoot != confRun || after.Driver != "vfs" {
		t.Errorf("-g after the command: got %+v", after)
	}

	// The later value wins; --storage-opt accumulates across both passes.
	res = runCLI(t, env, "-g", g1, "-s", "vfs", "--storage-opt", "vfs.a=1", "config", "-g", g2, "--storage-opt", "vfs.b=2", "--storage-opt=vfs.c=3")
	if err := json.Unmarshal([]byte(res.stdout), &after); err != nil || res.code != 0 {
		t.Fatalf("config: %v", res)
	}
	if after.GraphRoot != g2 || strings.Join(after.DriverOptions, ",") != "vfs.a=1,vfs.b=2,vfs.c=3" {
		t.Errorf("two passes: got %+v", after)
	}
	// ... also on top of the configured options when nothing came before the command.
	res = runCLI(t, env, "config", "--storage-opt", "vfs.b=2")
	if err := json.Unmarshal([]byte(res.stdout), &after); err != nil || res.code != 0 {
		t.Fatalf("config: %v", res)
	}
	if want := strings.Join(append(append([]string(nil), configured...), "vfs.b=2"), ","); strings.Join(after.DriverOptions, ",") != want {
		t.Errorf("--storage-opt after the command: got %q, want %q", after.DriverOptions, want)
	}

	// Relative roots are made absolute.
	res = runCLI(t, runOpts{dir: dir}, "-g", "rel-graph", "-R", "rel-run", "config")
	if err := json.Unmarshal([]byte(res.stdout), &after); err != nil || res.code != 0 {
		t.Fatalf("config: %v", res)
	}
	if after.GraphRoot != filepath.Join(dir, "rel-graph") || after.RunRoot != filepath.Join(dir, "rel-run") {
		t.Errorf("relative roots: got %+v", after)
	}

	// $STORAGE_DRIVER and $STORAGE_OPTS apply to the configuration.
	envOver := runOpts{env: []string{"CONTAINERS_STORAGE_CONF=" + conf, "STORAGE_DRIVER=overlay", "STORAGE_OPTS=overlay.mountopt=nodev,overlay.size=1G"}}
	c = configOf(t, envOver)
	if c.Driver != "overlay" || strings.Join(c.DriverOptions, ",") != "overlay.mountopt=nodev,overlay.size=1G" {
		t.Errorf("environment overrides: got %+v", c)
	}

	// config FILE prints that file's options.
	res = runCLI(t, runOpts{}, "-g", g1, "-R", r1, "config", conf)
	if err := json.Unmarshal([]byte(res.stdout), &after); err != nil || res.code != 0 {
		t.Fatalf("config FILE: %v", res)
	}
	if after.GraphRoot != confGraph || after.Driver != "vfs" {
		t.Errorf("config FILE: got %+v", after)
	}
	// ... and a file that does not parse is an error.
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[storage\n"), 0o644)
	if res := runCLI(t, runOpts{}, "-g", g1, "-R", r1, "config", bad); res.code != 1 || res.stderr == "" {
		t.Errorf("config with a bad file: %v", res)
	}
}

// TestGlobalFlagsAfterCommand runs a create and a list with every global flag after the command
// name, and checks the store they used is the one named there.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	s := vfsStore(t)
	s.globalAfter = true
	out := s.ok("create-layer", "-n", "after")
	id := lines(out)[0]
	s.globalAfter = false
	wantLines(t, "layers", s.ok("layers"), id, "\tname: after")

	// A bogus graph root before the command loses to the one after it, and is never created.
	bogus := filepath.Join(t.TempDir(), "bogus")
	res := runCLI(t, runOpts{}, append([]string{"-g", bogus}, append([]string{"layers"}, s.globals()...)...)...)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("%v", res)
	}
	wantLines(t, "layers", res.stdout, id, "\tname: after")
	if _, err := os.Stat(bogus); !os.IsNotExist(err) {
		t.Errorf("overridden graph root %s was created", bogus)
	}
}

// TestParsingStopsAtFirstArgument: flags after the first positional argument are arguments.
func TestParsingStopsAtFirstArgument(t *testing.T) {
	s := vfsStore(t)
	id := lines(s.ok("create-layer", "-n", "foo"))[0]
	// "--json" is a second layer name that matches nothing: plain output, exit 1.
	res := s.cli("layer", "foo", "--json")
	if res.code != 1 || res.stderr != "" {
		t.Fatalf("%v", res)
	}
	wantLines(t, "layer foo --json", res.stdout, "ID: "+id, "Name: foo")
	// "--" ends the flags too.
	res = s.cli("layer", "--", "foo")
	if res.code != 0 {
		t.Fatalf("%v", res)
	}
	wantLines(t, "layer -- foo", res.stdout, "ID: "+id, "Name: foo")
}

// TestCombinedShortFlags: one-letter booleans combine, in either order.
func TestCombinedShortFlags(t *testing.T) {
	s := vfsStore(t)
	id := lines(s.ok("create-layer", "-rj", "-n", "x"))[0]
	var l struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
	}
	if err := json.Unmarshal([]byte(id), &l); err != nil || len(l.Names) != 1 || l.Names[0] != "x" {
		t.Fatalf("create-layer -rj: %q %v", id, err)
	}
	for _, flags := range []string{"-qj", "-jq"} {
		out := s.ok("images", flags)
		if out != "null\n" {
			t.Errorf("images %s = %q, want null", flags, out)
		}
	}
	// The last letter may take a value.
	out := s.ok("create-layer", "-rn", "y")
	wantLines(t, "create-layer -rn y", out, lines(out)[0], "\ty")
}

// TestVersion: version goes to stderr, its JSON to stdout, and it is the one set at build time
// (TestMain builds the CLI with -X main.version=testVersion).
func TestVersion(t *testing.T) {
	s := vfsStore(t)
	res := s.cli("version")
	if res.code != 0 || res.stdout != "" || res.stderr != "Version: "+testVersion+"\n" {
		t.Fatalf("%v", res)
	}
	if out := s.ok("version", "-j"); out != `[["Version","`+testVersion+`"]]`+"\n" {
		t.Fatalf("version -j = %q", out)
	}
}

// TestDebugLogsToStderr: with -D there is debug output on stderr, and stdout is unchanged.
func TestDebugLogsToStderr(t *testing.T) {
	s := vfsStore(t)
	s.ok("create-layer", "-n", "dbg")
	plain := s.ok("layers")
	res := s.cli("-D", "layers")
	if res.code != 0 || res.stdout != plain || !strings.Contains(res.stderr, "[DEBUG]") {
		t.Fatalf("%v", res)
	}
}

// copyExecutable copies an executable.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestDriverPath: drivers are found beside the CLI by default; a CLI installed elsewhere finds
// them through $CONTAINERS_STORAGE_DRIVER_PATH.
func TestDriverPath(t *testing.T) {
	lonely := filepath.Join(t.TempDir(), "containers-storage")
	copyExecutable(t, cliBin, lonely)
	dir := t.TempDir()
	args := []string{"-g", filepath.Join(dir, "g"), "-R", filepath.Join(dir, "r"), "-s", "vfs", "create-layer"}

	cmd := exec.Command(lonely, args...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "containers-storage-driver-vfs") {
		t.Fatalf("without a driver beside it: %v %q, want an error naming the driver executable", err, out)
	}
	cmd = exec.Command(lonely, args...)
	cmd.Env = append(os.Environ(), driverPathEnv+"="+filepath.Join(dir, "nowhere")+":"+binDir)
	if out, err := cmd.CombinedOutput(); err != nil || !hexID.MatchString(strings.TrimSpace(string(out))) {
		t.Fatalf("with %s: %v %q", driverPathEnv, err, out)
	}
	assertNoDrivers(t, args)
	c := configOf(t, runOpts{env: []string{driverPathEnv + "=/a:/b"}}, "-g", filepath.Join(dir, "g"), "-R", filepath.Join(dir, "r"), "-s", "vfs")
	if strings.Join(c.PluginDirs, ":") != "/a:/b" {
		t.Fatalf("config plugin-dirs = %q", c.PluginDirs)
	}
}
