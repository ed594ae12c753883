package core

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/errdefs"
)

// envMap is a fake-free environment for the loader: tests must not depend on the caller's.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeConf(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "storage.conf")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const fullConfig = `
[storage]
driver = "overlay"
driver_priority = ["overlay", "btrfs"]
runroot = "/run/cfgtest"
graphroot = "/var/lib/cfgtest"
imagestore = "/var/lib/cfgtest-images"
rootless_storage_path = "$HOME/.local/share/containers/storage"
transient_store = true
driver_plugin_path = "/opt/plugins/containers-storage-driver-overlay"
driver_plugin_dirs = ["/opt/plugins", "/usr/libexec/cs"]

[storage.options]
additionalimagestores = ["/ro1", "/ro2"]
additionallayerstores = ["/als"]
size = "10G"
mount_program = "/usr/bin/fuse-overlayfs"
mountopt = "nodev"
skip_mount_home = "true"
ignore_chown_errors = "false"
use_composefs = "false"
force_mask = "0755"
root-auto-userns-user = "containers"
auto-userns-min-size = 1024
auto-userns-max-size = 65536
disable-volatile = true

[storage.options.pull_options]
enable_partial_images = "true"
use_hard_links = "false"

[storage.options.overlay]
mountopt = "nodev,metacopy=on"
inodes = "1000"
force_mask = "shared"

[storage.options.vfs]
ignore_chown_errors = "true"

[storage.options.btrfs]
min_space = "1G"

[storage.options.zfs]
fsname = "pool/cs"

[storage.options.thinpool]
autoextend_percent = "20"
basesize = "10G"
`

func TestConfigLoad(t *testing.T) {
	tests := []struct {
		name    string
		toml    string
		env     map[string]string
		want    func(t *testing.T, o Options)
		wantErr error    // class the error must wrap
		errHas  []string // substrings the error must contain (the file path is always checked)
		warn    string   // substring expected in the Warn log
	}{
		{
			name: "full file",
			toml: fullConfig,
			want: func(t *testing.T, o Options) {
				eq(t, "GraphRoot", o.GraphRoot, "/var/lib/cfgtest")
				eq(t, "RunRoot", o.RunRoot, "/run/cfgtest")
				eq(t, "ImageStore", o.ImageStore, "/var/lib/cfgtest-images")
				eq(t, "TransientStore", o.TransientStore, true)
				eq(t, "Driver", o.Driver, "overlay")
				eq(t, "DriverPriority", o.DriverPriority, []string{"overlay", "btrfs"})
				eq(t, "PluginPath", o.PluginPath, "/opt/plugins/containers-storage-driver-overlay")
				eq(t, "PluginDirs", o.PluginDirs, []string{"/opt/plugins", "/usr/libexec/cs"})
				eq(t, "DisableVolatile", o.DisableVolatile, true)
				eq(t, "PullOptions", o.PullOptions, map[string]string{"enable_partial_images": "true", "use_hard_links": "false"})
				eq(t, "AutoUsernsUser", o.AutoUsernsUser, "containers")
				eq(t, "AutoUsernsMinSize", o.AutoUsernsMinSize, uint32(1024))
				eq(t, "AutoUsernsMaxSize", o.AutoUsernsMaxSize, uint32(65536))
				eq(t, "DriverOptions", o.DriverOptions, []string{
					"overlay.imagestore=/ro1", "overlay.imagestore=/ro2",
					"overlay.additionallayerstore=/als",
					"overlay.size=10G", "overlay.mount_program=/usr/bin/fuse-overlayfs",
					"overlay.skip_mount_home=true", "overlay.ignore_chown_errors=false",
					"overlay.force_mask=0755", "overlay.mountopt=nodev", "overlay.use_composefs=false",
					// [storage.options.overlay] last, so it wins; other drivers' tables are ignored.
					"overlay.mountopt=nodev,metacopy=on", "overlay.inodes=1000", "overlay.force_mask=shared",
				})
			},
		},
		{
			name: "empty file gives built-in defaults",
			toml: "",
			want: func(t *testing.T, o Options) {
				eq(t, "GraphRoot", o.GraphRoot, DefaultGraphRoot)
				eq(t, "RunRoot", o.RunRoot, DefaultRunRoot)
				eq(t, "Driver", o.Driver, "")
				eq(t, "DriverOptions", o.DriverOptions, []string(nil))
			},
			warn: "picked automatically",
		},
		{
			name: "storage table only",
			toml: "[storage]\ndriver = \"vfs\"\ngraphroot = \"/g\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "Driver", o.Driver, "vfs")
				eq(t, "GraphRoot", o.GraphRoot, "/g")
				eq(t, "RunRoot", o.RunRoot, DefaultRunRoot)
				eq(t, "DriverOptions", o.DriverOptions, []string(nil))
			},
		},
		{
			name: "roots expand $UID and variables and are cleaned",
			toml: "[storage]\ndriver = \"vfs\"\ngraphroot = \"$CFGROOT/g/$UID/\"\nrunroot = \"/r//x/../y\"\n",
			env:  map[string]string{"CFGROOT": "/base"},
			want: func(t *testing.T, o Options) {
				eq(t, "GraphRoot", o.GraphRoot, "/base/g/0")
				eq(t, "RunRoot", o.RunRoot, "/r/y")
			},
		},
		{
			name: "options table without a driver uses the bare prefix",
			toml: "[storage]\ndriver_priority = [\"btrfs\"]\n[storage.options]\nsize = \"5G\"\nadditionalimagestores = [\"/ro\"]\n[storage.options.overlay]\nmountopt = \"nodev\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "Driver", o.Driver, "")
				eq(t, "DriverPriority", o.DriverPriority, []string{"btrfs"})
				eq(t, "DriverOptions", o.DriverOptions, []string{".imagestore=/ro", ".size=5G"})
			},
		},
		{
			name: "overlay table ignored for another driver",
			toml: "[storage]\ndriver = \"vfs\"\n[storage.options.overlay]\nmountopt = \"nodev\"\n[storage.options.vfs]\nignore_chown_errors = \"true\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "DriverOptions", o.DriverOptions, []string{"vfs.ignore_chown_errors=true"})
			},
		},
		{
			name: "btrfs table",
			toml: "[storage]\ndriver = \"btrfs\"\n[storage.options.btrfs]\nmin_space = \"1G\"\nsize = \"2G\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "DriverOptions", o.DriverOptions, []string{"btrfs.min_space=1G", "btrfs.size=2G"})
			},
		},
		{
			name: "zfs table",
			toml: "[storage]\ndriver = \"zfs\"\n[storage.options.zfs]\nmountopt = \"nodev\"\nfsname = \"tank/cs\"\nsize = \"1G\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "DriverOptions", o.DriverOptions, []string{"zfs.fsname=tank/cs", "zfs.mountopt=nodev", "zfs.size=1G"})
			},
		},
		{
			name: "integer force_mask is octal",
			toml: "[storage]\ndriver = \"overlay\"\n[storage.options]\nforce_mask = 0o700\n",
			want: func(t *testing.T, o Options) {
				eq(t, "DriverOptions", o.DriverOptions, []string{"overlay.force_mask=700"})
			},
		},
		{
			name: "imagestore in the options table is the split store",
			toml: "[storage]\ndriver = \"vfs\"\n[storage.options]\nimagestore = \"/split\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "ImageStore", o.ImageStore, "/split")
				eq(t, "DriverOptions", o.DriverOptions, []string(nil))
			},
		},
		{
			name: "thinpool table ignored",
			toml: "[storage]\ndriver = \"vfs\"\n[storage.options.thinpool]\nanything = 1\nbasesize = \"10G\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "DriverOptions", o.DriverOptions, []string(nil))
			},
		},
		{
			name: "overlay2 is rewritten with a warning",
			toml: "[storage]\ndriver = \"overlay2\"\n[storage.options]\nsize = \"1G\"\n[storage.options.overlay]\nmountopt = \"nodev\"\n",
			want: func(t *testing.T, o Options) {
				eq(t, "Driver", o.Driver, "overlay")
				eq(t, "DriverOptions", o.DriverOptions, []string{"overlay.size=1G", "overlay.mountopt=nodev"})
			},
			warn: "overlay2",
		},
		{
			name: "STORAGE_DRIVER replaces the driver, and its table applies",
			toml: "[storage]\ndriver = \"overlay\"\n[storage.options]\nsize = \"1G\"\n[storage.options.overlay]\nmountopt = \"nodev\"\n[storage.options.btrfs]\nmin_space = \"2G\"\n",
			env:  map[string]string{"STORAGE_DRIVER": "btrfs"},
			want: func(t *testing.T, o Options) {
				eq(t, "Driver", o.Driver, "btrfs")
				eq(t, "DriverOptions", o.DriverOptions, []string{"btrfs.size=1G", "btrfs.min_space=2G"})
			},
		},
		{
			name: "STORAGE_DRIVER=overlay2 is rewritten too",
			toml: "[storage]\ndriver = \"vfs\"\n",
			env:  map[string]string{"STORAGE_DRIVER": "overlay2"},
			want: func(t *testing.T, o Options) { eq(t, "Driver", o.Driver, "overlay") },
			warn: "overlay2",
		},
		{
			name: "STORAGE_OPTS replaces the file's options",
			toml: "[storage]\ndriver = \"overlay\"\n[storage.options.overlay]\nmountopt = \"nodev\"\n",
			env:  map[string]string{"STORAGE_OPTS": "overlay.size=3G,overlay.mount_program=/bin/fo"},
			want: func(t *testing.T, o Options) {
				eq(t, "DriverOptions", o.DriverOptions, []string{"overlay.size=3G", "overlay.mount_program=/bin/fo"})
			},
		},
		{
			name: "empty STORAGE_OPTS clears the file's options",
			toml: "[storage]\ndriver = \"overlay\"\n[storage.options.overlay]\nmountopt = \"nodev\"\n",
			env:  map[string]string{"STORAGE_OPTS": ""},
			want: func(t *testing.T, o Options) { eq(t, "DriverOptions", o.DriverOptions, []string(nil)) },
		},

		// Unknown keys, at each level.
		{name: "unknown top-level key", toml: "driver = \"vfs\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`unknown key "driver"`}},
		{name: "unknown top-level table", toml: "[storage]\ndriver = \"vfs\"\n[store]\nx = 1\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`unknown key "store"`}},
		{name: "unknown key in storage", toml: "[storage]\ndriver = \"vfs\"\ngraph_root = \"/x\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`unknown key "storage.graph_root"`}},
		{name: "unknown key in options", toml: "[storage.options]\noverride_kernel_check = \"true\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.options.override_kernel_check"`}},
		{name: "unknown key in overlay", toml: "[storage.options.overlay]\nmount_opt = \"nodev\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.options.overlay.mount_opt"`}},
		{name: "unknown key in vfs", toml: "[storage.options.vfs]\nsize = \"1G\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.options.vfs.size"`}},
		{name: "unknown key in btrfs", toml: "[storage.options.btrfs]\nmountopt = \"x\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.options.btrfs.mountopt"`}},
		{name: "unknown key in zfs", toml: "[storage.options.zfs]\nname = \"x\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.options.zfs.name"`}},
		{name: "unknown driver table reported once", toml: "[storage.options.devmapper]\na = \"1\"\nb = \"2\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`unknown key "storage.options.devmapper":`}},
		{name: "several unknown keys", toml: "[storage]\nfoo = 1\nbar = 2\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`unknown keys "storage.foo", "storage.bar"`}},

		// Wrong types: the key and its line.
		{name: "driver not a string", toml: "[storage]\n\ndriver = 1\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{"line 3", `"storage.driver"`}},
		{name: "transient_store not a bool", toml: "[storage]\ntransient_store = \"yes\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{"line 2", `"storage.transient_store"`}},
		{name: "driver_priority not a list", toml: "[storage]\ndriver_priority = \"overlay\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.driver_priority"`}},
		{name: "pull option not a string", toml: "[storage.options.pull_options]\nenable_partial_images = true\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`storage.options.pull_options.enable_partial_images`}},
		{name: "auto-userns size not a number", toml: "[storage.options]\nauto-userns-min-size = \"big\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.options.auto-userns-min-size"`}},
		{name: "force_mask a list", toml: "[storage.options]\nforce_mask = [1]\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{"storage.options.force_mask"}},
		{name: "overlay table a string", toml: "[storage.options]\noverlay = \"x\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{`"storage.options.overlay"`}},

		// Syntax errors: file, line and column.
		{name: "unterminated table header", toml: "[storage]\ndriver = \"vfs\"\n[storage.options\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{"storage.conf:4:"}}, // the parser reports the newline that ends the header
		{name: "unterminated string", toml: "[storage]\ndriver = \"vfs\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{"storage.conf:2:"}},
		{name: "duplicate key", toml: "[storage]\ndriver = \"vfs\"\ndriver = \"zfs\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{"storage.conf:3:"}},

		// Values the store refuses.
		{name: "remap-uids not supported", toml: "[storage.options]\nremap-uids = \"0:100000:65536\"\n", wantErr: errdefs.ErrNotSupported, errHas: []string{`"storage.options.remap-uids"`}},
		{name: "imagestore equal to graphroot", toml: "[storage]\ngraphroot = \"/g\"\nimagestore = \"/g/\"\n", wantErr: errdefs.ErrInvalidArgument, errHas: []string{"graphroot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConf(t, tt.toml)
			var logs bytes.Buffer
			logger := hclog.New(&hclog.LoggerOptions{Name: "storage", Level: hclog.Warn, Output: &logs})
			o, err := loadOptions(path, logger, envMap(tt.env), 0)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want one wrapping %v", tt.wantErr)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error %q does not wrap %v", err, tt.wantErr)
				}
				for _, s := range append([]string{path}, tt.errHas...) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Logger != logger {
				t.Error("Options.Logger is not the logger given")
			}
			tt.want(t, o)
			if tt.warn == "" && logs.Len() > 0 {
				t.Errorf("unexpected log output: %s", logs.String())
			}
			if tt.warn != "" && !strings.Contains(logs.String(), tt.warn) {
				t.Errorf("log %q does not mention %q", logs.String(), tt.warn)
			}
		})
	}
}

func eq(t *testing.T, field string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", field, got, want)
	}
}

func TestConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.conf")
	_, err := LoadOptions(path)
	if !errors.Is(err, errdefs.ErrNotFound) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("LoadOptions of a missing file: %v, want ErrNotFound naming %s", err, path)
	}
}

// TestConfigNoFile: "" means defaults only, and the environment still applies.
func TestConfigNoFile(t *testing.T) {
	o, err := loadOptions("", hclog.NewNullLogger(), envMap(map[string]string{"STORAGE_DRIVER": "vfs", "STORAGE_OPTS": "vfs.ignore_chown_errors=true"}), 0)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "GraphRoot", o.GraphRoot, DefaultGraphRoot)
	eq(t, "RunRoot", o.RunRoot, DefaultRunRoot)
	eq(t, "Driver", o.Driver, "vfs")
	eq(t, "DriverOptions", o.DriverOptions, []string{"vfs.ignore_chown_errors=true"})
}

// TestConfigDefaultLoggerIsSilent: warnings go to a logger at level Error, which prints nothing
// for them (scripts compare whole outputs, stderr included).
func TestConfigDefaultLoggerIsSilent(t *testing.T) {
	o, err := LoadOptions(writeConf(t, "[storage]\ndriver = \"overlay2\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Logger == nil || o.Logger.IsWarn() || !o.Logger.IsError() {
		t.Errorf("default logger level: warn enabled %v, error enabled %v; want only errors", o.Logger.IsWarn(), o.Logger.IsError())
	}
}

// TestConfigRootsResolveSymlinks: a root reached through a symlink is resolved, as /var/run is to
// /run by the established tool.
func TestConfigRootsResolveSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	path := writeConf(t, "[storage]\ndriver = \"vfs\"\ngraphroot = \""+filepath.Join(dir, "link")+"\"\n")
	o, err := loadOptions(path, hclog.NewNullLogger(), envMap(nil), 0)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "GraphRoot", o.GraphRoot, real)
}

func TestDefaultConfigFile(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	etc, usr := mk("etc/storage.conf"), mk("usr/storage.conf")
	missingEtc := filepath.Join(dir, "missing/storage.conf")
	xdg := mk("xdg/containers/storage.conf")
	home := mk("home/.config/containers/storage.conf")

	tests := []struct {
		name   string
		env    map[string]string
		euid   int
		system []string
		want   string
	}{
		{"explicit wins even if missing", map[string]string{"CONTAINERS_STORAGE_CONF": "/nonexistent.conf"}, 0, []string{etc, usr}, "/nonexistent.conf"},
		{"etc before usr", nil, 0, []string{etc, usr}, etc},
		{"usr when etc is missing", nil, 0, []string{missingEtc, usr}, usr},
		{"none exists", nil, 0, []string{missingEtc}, ""},
		{"root skips XDG", map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "xdg")}, 0, []string{etc}, etc},
		{"rootless XDG first", map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "xdg")}, 1000, []string{etc}, xdg},
		{"rootless HOME/.config without XDG", map[string]string{"HOME": filepath.Join(dir, "home")}, 1000, []string{etc}, home},
		{"rootless falls back to system", map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "none")}, 1000, []string{etc}, etc},
		{"explicit wins for rootless", map[string]string{"CONTAINERS_STORAGE_CONF": etc, "XDG_CONFIG_HOME": filepath.Join(dir, "xdg")}, 1000, []string{usr}, etc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := findConfigFile(envMap(tt.env), tt.euid, tt.system); got != tt.want {
				t.Errorf("findConfigFile = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConfigShippedFileParses: the storage.conf at the repository root is valid and says what
// its comments say.
func TestConfigShippedFileParses(t *testing.T) {
	path := filepath.Join("..", "storage.conf")
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &logs})
	o, err := loadOptions(path, logger, envMap(nil), 0)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Driver", o.Driver, "overlay")
	eq(t, "GraphRoot", o.GraphRoot, DefaultGraphRoot)
	eq(t, "RunRoot", o.RunRoot, DefaultRunRoot)
	eq(t, "DriverOptions", o.DriverOptions, []string{"overlay.mountopt=nodev"})
	eq(t, "TransientStore", o.TransientStore, false)
	if logs.Len() > 0 {
		t.Errorf("shipped file logs warnings: %s", logs.String())
	}

	// Every commented-out "key = value" line of the shipped file must be a valid setting too:
	// uncomment them all (except the remap-* keys, documented as unsupported) and load again.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[string]bool{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "[") {
			section = line
		}
		if k, _, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = "); ok && strings.HasPrefix(line, "# ") && !strings.Contains(k, " ") {
			if strings.HasPrefix(k, "remap-") || seen[section+k] {
				continue
			}
			seen[section+k] = true
			line = strings.TrimPrefix(line, "# ")
			line = strings.ReplaceAll(line, "$HOME", "/home")
		}
		out = append(out, line)
	}
	all := writeConf(t, strings.Join(out, "\n"))
	// imagestore = "" would be equal to nothing; graphroot stays the default.
	o, err = loadOptions(all, hclog.NewNullLogger(), envMap(nil), 0)
	if err != nil {
		t.Fatalf("shipped file with its examples uncommented: %v", err)
	}
	if len(seen) < 20 {
		t.Errorf("only %d commented settings found in the shipped file: the check is not looking", len(seen))
	}
}
