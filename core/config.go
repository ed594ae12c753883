package core

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/errdefs"
)

// Built-in locations, used when the configuration names none.
const (
	DefaultGraphRoot = "/var/lib/containers/storage"
	DefaultRunRoot   = "/run/containers/storage"
)

// systemConfigFiles are the system-wide storage.conf locations, in search order.
var systemConfigFiles = []string{"/etc/containers/storage.conf", "/usr/share/containers/storage.conf"}

// Options configure a store: where it lives, which driver plugin runs it, with which options.
// LoadOptions and DefaultOptions fill them from storage.conf; callers (the CLI's flags) may then
// change any field before Open. The zero value of a field means "not set" unless its comment
// says otherwise.
type Options struct {
	// GraphRoot is the persistent root (layers, images, containers, the driver home) and RunRoot
	// the runtime root (mount counts, feature caches, transient records). Both are required by
	// Open; LoadOptions fills the built-in defaults when the file names none.
	GraphRoot, RunRoot string
	// ImageStore is a separate read-write image store (the "split store" of SPEC-disk §1.6);
	// it must differ from GraphRoot.
	ImageStore string
	// TransientStore keeps container records and container layers under RunRoot.
	TransientStore bool
	// Driver names the storage driver ("overlay", "vfs", "btrfs", "zfs"); "overlay2" has already
	// been rewritten to "overlay". "" means: auto-pick per SPEC-disk §1.8, trying DriverPriority
	// first when it is set.
	Driver         string
	DriverPriority []string
	// DriverOptions are the driver's options as "key=value", keys possibly prefixed with the
	// driver's name ("overlay.mountopt=nodev") or "." when the driver was not named. The driver
	// validates them and names a bad key.
	DriverOptions []string
	// PluginPath is an explicit driver plugin executable ([storage] driver_plugin_path); when set
	// it is used whatever the driver's name.
	PluginPath string
	// PluginDirs are searched, in order, for containers-storage-driver-<name>
	// ([storage] driver_plugin_dirs); the store adds its own default locations after them.
	PluginDirs []string
	// ReadOnly opens the store read-only: every write fails with ErrStoreIsReadOnly.
	ReadOnly bool
	// Logger receives the store's structured logs. nil means the store's own default.
	Logger hclog.Logger

	// DisableVolatile turns off the "volatile" mount option for volatile containers
	// ([storage.options] disable-volatile).
	DisableVolatile bool
	// PullOptions are handed, uninterpreted, to image pull code ([storage.options.pull_options];
	// "string bools" such as enable_partial_images = "true").
	PullOptions map[string]string
	// AutoUsernsUser, AutoUsernsMinSize and AutoUsernsMaxSize configure automatic user-namespace
	// ranges ([storage.options] root-auto-userns-user, auto-userns-min-size, auto-userns-max-size).
	AutoUsernsUser                       string
	AutoUsernsMinSize, AutoUsernsMaxSize uint32
}

// tomlConfig is storage.conf. Every key of the established format is declared, so that any other
// key is reported as unknown (see decodeConfig).
type tomlConfig struct {
	Storage struct {
		Driver              string   `toml:"driver"`
		DriverPriority      []string `toml:"driver_priority"`
		RunRoot             string   `toml:"runroot"`
		GraphRoot           string   `toml:"graphroot"`
		ImageStore          string   `toml:"imagestore"`
		RootlessStoragePath string   `toml:"rootless_storage_path"` // rootless only: unused as root
		TransientStore      bool     `toml:"transient_store"`
		// Ours: where the driver plugins are.
		DriverPluginPath string      `toml:"driver_plugin_path"`
		DriverPluginDirs []string    `toml:"driver_plugin_dirs"`
		Options          tomlOptions `toml:"options"`
	} `toml:"storage"`

	// Set by applyEnvironment, never by the file.
	envDriverOptions    []string
	envDriverOptionsSet bool
}

// tomlOptions is [storage.options]: keys that apply to whichever driver runs, plus one sub-table
// per driver whose keys apply only to that driver.
type tomlOptions struct {
	AdditionalImageStores []string          `toml:"additionalimagestores"`
	AdditionalLayerStores []string          `toml:"additionallayerstores"`
	ImageStore            string            `toml:"imagestore"`
	Size                  string            `toml:"size"`
	MountProgram          string            `toml:"mount_program"`
	MountOpt              string            `toml:"mountopt"`
	SkipMountHome         string            `toml:"skip_mount_home"`
	IgnoreChownErrors     string            `toml:"ignore_chown_errors"`
	UseComposefs          string            `toml:"use_composefs"`
	ForceMask             forceMask         `toml:"force_mask"`
	RemapUIDs             string            `toml:"remap-uids"`
	RemapGIDs             string            `toml:"remap-gids"`
	RemapUser             string            `toml:"remap-user"`
	RemapGroup            string            `toml:"remap-group"`
	RootAutoUsernsUser    string            `toml:"root-auto-userns-user"`
	AutoUsernsMinSize     uint32            `toml:"auto-userns-min-size"`
	AutoUsernsMaxSize     uint32            `toml:"auto-userns-max-size"`
	DisableVolatile       bool              `toml:"disable-volatile"`
	PullOptions           map[string]string `toml:"pull_options"`

	Overlay struct {
		MountOpt          string `toml:"mountopt"`
		MountProgram      string `toml:"mount_program"`
		Size              string `toml:"size"`
		Inodes            string `toml:"inodes"`
		SkipMountHome     string `toml:"skip_mount_home"`
		UseComposefs      string `toml:"use_composefs"`
		ForceMask         string `toml:"force_mask"`
		IgnoreChownErrors string `toml:"ignore_chown_errors"`
	} `toml:"overlay"`
	Vfs struct {
		IgnoreChownErrors string `toml:"ignore_chown_errors"`
	} `toml:"vfs"`
	Btrfs struct {
		MinSpace string `toml:"min_space"`
		Size     string `toml:"size"`
	} `toml:"btrfs"`
	Zfs struct {
		MountOpt string `toml:"mountopt"`
		FSName   string `toml:"fsname"`
		Size     string `toml:"size"`
	} `toml:"zfs"`
	Aufs struct {
		MountOpt string `toml:"mountopt"`
	} `toml:"aufs"`
	Thinpool ignoredTable `toml:"thinpool"` // devicemapper is gone; its table is accepted and ignored
}

// forceMask is [storage.options] force_mask: an integer mode (0o755) or a string ("0755",
// "shared", "private").
type forceMask string

func (m *forceMask) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*m = forceMask(strconv.FormatInt(v, 8))
	case string:
		*m = forceMask(v)
	default:
		return fmt.Errorf("force_mask must be a mode or a string, not %T", v)
	}
	return nil
}

// ignoredTable accepts any table and keeps nothing.
type ignoredTable struct{}

func (*ignoredTable) UnmarshalTOML(v any) error {
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("must be a table, not %T", v)
	}
	return nil
}

// DefaultConfigFile returns the storage.conf to use: $CONTAINERS_STORAGE_CONF when set (even if
// the file is missing, so that LoadOptions reports it), otherwise the first that exists of
// $XDG_CONFIG_HOME/containers/storage.conf (only when not running as root; $HOME/.config when
// XDG_CONFIG_HOME is unset), /etc/containers/storage.conf, /usr/share/containers/storage.conf.
// It returns "" when none exists: the built-in defaults apply.
func DefaultConfigFile() string {
	return findConfigFile(os.LookupEnv, os.Geteuid(), systemConfigFiles)
}

func findConfigFile(lookup func(string) (string, bool), euid int, system []string) string {
	if p, ok := lookup("CONTAINERS_STORAGE_CONF"); ok && p != "" {
		return p
	}
	candidates := system
	if euid != 0 {
		dir, _ := lookup("XDG_CONFIG_HOME")
		if dir == "" {
			if home, _ := lookup("HOME"); home != "" {
				dir = filepath.Join(home, ".config")
			}
		}
		if dir != "" {
			candidates = append([]string{filepath.Join(dir, "containers", "storage.conf")}, system...)
		}
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// DefaultOptions is LoadOptions(DefaultConfigFile()).
func DefaultOptions() (Options, error) {
	return LoadOptions(DefaultConfigFile())
}

// LoadOptions reads storage.conf at path ("" = no file: built-in defaults only), applies the
// environment overrides (see applyEnvironment) and returns the options. Roots the file leaves
// empty get the built-in defaults; $UID and $VAR in roots are expanded and symlinks resolved, as
// the established tool does. Errors name the file: a missing file wraps errdefs.ErrNotFound; a
// syntax error (with line and column), an unknown key, a value of the wrong type (with the key
// and line), or inconsistent roots wrap errdefs.ErrInvalidArgument; remap-* ID mappings, which
// this store does not implement, wrap errdefs.ErrNotSupported. Warnings (overlay2 rewritten to
// overlay, no driver set) go to a logger named "storage" at level Error, so they are silent;
// LoadOptionsWithLogger takes the caller's logger instead.
func LoadOptions(path string) (Options, error) {
	return LoadOptionsWithLogger(path, nil)
}

// LoadOptionsWithLogger is LoadOptions logging its warnings to logger, which also becomes
// Options.Logger. A nil logger is LoadOptions' silent default.
func LoadOptionsWithLogger(path string, logger hclog.Logger) (Options, error) {
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "storage", Level: hclog.Error, Output: os.Stderr})
	}
	return loadOptions(path, logger, os.LookupEnv, os.Geteuid())
}

func loadOptions(path string, logger hclog.Logger, lookup func(string) (string, bool), euid int) (Options, error) {
	var cfg tomlConfig
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Options{}, fmt.Errorf("storage config %s: %w: %w", path, errdefs.ErrNotFound, err)
			}
			return Options{}, fmt.Errorf("storage config %s: %w", path, err)
		}
		if err := decodeConfig(path, data, &cfg); err != nil {
			return Options{}, err
		}
	}
	applyEnvironment(&cfg, lookup)
	return cfg.options(path, logger, lookup, euid)
}

// decodeConfig decodes storage.conf into cfg, rejecting syntax errors, values of the wrong type
// and keys that cfg does not declare.
func decodeConfig(path string, data []byte, cfg *tomlConfig) error {
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			where := fmt.Sprintf("%s:%d:%d", path, pe.Position.Line, pe.Position.Col)
			if pe.LastKey != "" {
				return fmt.Errorf("storage config %s: %s (last key %q): %w", where, pe.Message, pe.LastKey, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("storage config %s: %s: %w", where, pe.Message, errdefs.ErrInvalidArgument)
		}
		// Type mismatches: "toml: line 3 (last key "storage.driver"): incompatible types: ...".
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		return fmt.Errorf("storage config %s: %s: %w", path, msg, errdefs.ErrInvalidArgument)
	}
	var unknown []string
	for _, k := range md.Undecoded() {
		name := k.String()
		// Report an unknown table once, not again for each key inside it.
		if n := len(unknown); n > 0 && strings.HasPrefix(name, unknown[n-1]+".") {
			continue
		}
		unknown = append(unknown, name)
	}
	switch len(unknown) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("storage config %s: unknown key %q: %w", path, unknown[0], errdefs.ErrInvalidArgument)
	default:
		return fmt.Errorf("storage config %s: unknown keys %s: %w", path, quoteAll(unknown), errdefs.ErrInvalidArgument)
	}
}

// applyEnvironment applies the environment variables that override storage.conf; it is the only
// place they are read:
//
//	STORAGE_DRIVER  when non-empty, replaces [storage] driver, before the driver options are
//	                derived (so they take its name as prefix, and its own section applies)
//	STORAGE_OPTS    when set, a comma-separated list that REPLACES every driver option the file
//	                gave ("" leaves none)
//
// (CONTAINERS_STORAGE_CONF and XDG_CONFIG_HOME choose the file: see DefaultConfigFile.)
func applyEnvironment(cfg *tomlConfig, lookup func(string) (string, bool)) {
	if d, _ := lookup("STORAGE_DRIVER"); d != "" {
		cfg.Storage.Driver = d
	}
	if o, ok := lookup("STORAGE_OPTS"); ok {
		cfg.envDriverOptionsSet = true
		cfg.envDriverOptions = nil
		if o != "" {
			cfg.envDriverOptions = strings.Split(o, ",")
		}
	}
}

// options converts the decoded file into Options, as the established tool does.
func (cfg *tomlConfig) options(path string, logger hclog.Logger, lookup func(string) (string, bool), euid int) (Options, error) {
	st, so := &cfg.Storage, &cfg.Storage.Options
	where := path
	if where == "" {
		where = "(built-in defaults)"
	}
	for _, kv := range [][2]string{{"remap-uids", so.RemapUIDs}, {"remap-gids", so.RemapGIDs}, {"remap-user", so.RemapUser}, {"remap-group", so.RemapGroup}} {
		if kv[1] != "" {
			return Options{}, fmt.Errorf("storage config %s: key %q: ID-mapped storage: %w", where, "storage.options."+kv[0], errdefs.ErrNotSupported)
		}
	}

	o := Options{
		ImageStore:        st.ImageStore,
		TransientStore:    st.TransientStore,
		Driver:            st.Driver,
		DriverPriority:    append([]string(nil), st.DriverPriority...),
		PluginPath:        st.DriverPluginPath,
		PluginDirs:        append([]string(nil), st.DriverPluginDirs...),
		Logger:            logger,
		DisableVolatile:   so.DisableVolatile,
		PullOptions:       so.PullOptions,
		AutoUsernsUser:    so.RootAutoUsernsUser,
		AutoUsernsMinSize: so.AutoUsernsMinSize,
		AutoUsernsMaxSize: so.AutoUsernsMaxSize,
	}
	if o.Driver == "overlay2" {
		logger.Warn("switching the driver from overlay2 to the equivalent overlay", "config", where)
		o.Driver = "overlay"
	}
	if o.Driver == "" && len(o.DriverPriority) == 0 {
		logger.Warn("no storage driver set; one is picked automatically", "config", where)
	}
	if o.ImageStore == "" {
		o.ImageStore = so.ImageStore
	}

	var err error
	roots := []struct {
		key string
		dst *string
		val string
		def string
	}{
		{"storage.graphroot", &o.GraphRoot, st.GraphRoot, DefaultGraphRoot},
		{"storage.runroot", &o.RunRoot, st.RunRoot, DefaultRunRoot},
		{"storage.imagestore", &o.ImageStore, o.ImageStore, ""},
	}
	for _, r := range roots {
		v := r.val
		if v == "" {
			v = r.def
		}
		if v == "" {
			continue
		}
		if *r.dst, err = expandPath(v, lookup, euid); err != nil {
			return Options{}, fmt.Errorf("storage config %s: key %q: %w", where, r.key, err)
		}
	}
	if o.ImageStore != "" && o.ImageStore == o.GraphRoot {
		return Options{}, fmt.Errorf("storage config %s: imagestore %s must differ from graphroot: %w", where, o.ImageStore, errdefs.ErrInvalidArgument)
	}

	if cfg.envDriverOptionsSet {
		o.DriverOptions = append([]string(nil), cfg.envDriverOptions...)
	} else {
		o.DriverOptions = driverOptions(o.Driver, so)
	}
	return o, nil
}

// driverOptions turns [storage.options] into driver options: each key of the table itself as
// "<driver>.<key>=<value>" (additionalimagestores as one "<driver>.imagestore=" per store,
// additionallayerstores as "<driver>.additionallayerstore="), then the keys of the selected
// driver's own sub-table, which therefore win where both set a key. With no driver named the
// prefix is "" (".size=..."), which every driver accepts, and no sub-table applies.
func driverOptions(driver string, so *tomlOptions) []string {
	var out []string
	add := func(key, value string) {
		if value != "" {
			out = append(out, driver+"."+key+"="+value)
		}
	}
	for _, s := range so.AdditionalImageStores {
		add("imagestore", s)
	}
	for _, s := range so.AdditionalLayerStores {
		add("additionallayerstore", s)
	}
	add("size", so.Size)
	add("mount_program", so.MountProgram)
	add("skip_mount_home", so.SkipMountHome)
	add("ignore_chown_errors", so.IgnoreChownErrors)
	add("force_mask", string(so.ForceMask))
	add("mountopt", so.MountOpt)
	add("use_composefs", so.UseComposefs)

	switch driver {
	case "overlay":
		ov := &so.Overlay
		add("ignore_chown_errors", ov.IgnoreChownErrors)
		add("mount_program", ov.MountProgram)
		add("mountopt", ov.MountOpt)
		add("size", ov.Size)
		add("inodes", ov.Inodes)
		add("skip_mount_home", ov.SkipMountHome)
		add("force_mask", ov.ForceMask)
		add("use_composefs", ov.UseComposefs)
	case "vfs":
		add("ignore_chown_errors", so.Vfs.IgnoreChownErrors)
	case "btrfs":
		add("min_space", so.Btrfs.MinSpace)
		add("size", so.Btrfs.Size)
	case "zfs":
		add("fsname", so.Zfs.FSName)
		add("mountopt", so.Zfs.MountOpt)
		add("size", so.Zfs.Size)
	case "aufs":
		add("mountopt", so.Aufs.MountOpt)
	}
	return out
}

// expandPath expands $UID (the effective UID) and $VAR in a configured root, then resolves
// symlinks when the path exists (/var/run becomes /run), as the established tool does.
func expandPath(p string, lookup func(string) (string, bool), euid int) (string, error) {
	p = os.Expand(p, func(name string) string {
		if name == "UID" {
			return strconv.Itoa(euid)
		}
		v, _ := lookup(name)
		return v
	})
	if p == "" {
		return "", fmt.Errorf("expands to an empty path: %w", errdefs.ErrInvalidArgument)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r, nil
	}
	return filepath.Clean(p), nil
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
