package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/pluggable-storage/storage/core"
	"github.com/pluggable-storage/storage/errdefs"
)

// cmdFlags holds the values of every command-specific flag. One invocation runs one command,
// so the fields are shared between commands that spell a flag the same way.
type cmdFlags struct {
	json         bool
	quiet        bool // layers -q (quick), images -q, metadata -q, exists -q, check -q (quick)
	tree         bool
	names        []string
	id           string
	label        string
	readOnly     bool // create-layer -r, mount -r (mount an image)
	file         string
	digest       string
	metadata     string
	metadataFile string
	volatile     bool
	mountOpts    string
	force        bool
	test         bool
	existLayer   bool
	existImage   bool
	existCont    bool
	uncompressed bool
	gzip         bool
	bzip2        bool
	xz           bool
	chown        string
	repair       bool
	maxAge       string
	hashMethod   string
	idmap        idMapFlags
}

// idMapFlags are the ID-mapping flags of create-layer, import-layer, create-storage-layer and
// create-container. The store has no ID-mapped layers yet, so anything but the host mapping
// is refused (see check).
type idMapFlags struct {
	hostUIDMap, hostGIDMap bool
	uidMap, gidMap         string
	subUIDMap, subGIDMap   string
}

func addJSON(fs *pflag.FlagSet, f *cmdFlags) {
	fs.BoolVarP(&f.json, "json", "j", false, "Prefer JSON output")
}

func addNames(fs *pflag.FlagSet, f *cmdFlags, what string) {
	fs.VarP(&listValue{p: &f.names}, "name", "n", what+" name")
}

func addIDMapFlags(fs *pflag.FlagSet, f *cmdFlags) {
	m := &f.idmap
	fs.BoolVar(&m.hostUIDMap, "hostuidmap", false, "Force host UID map")
	fs.BoolVar(&m.hostGIDMap, "hostgidmap", false, "Force host GID map")
	fs.StringVar(&m.uidMap, "uidmap", "", "UID map")
	fs.StringVar(&m.gidMap, "gidmap", "", "GID map")
	fs.StringVar(&m.subUIDMap, "subuidmap", "", "subuid UID map for a user")
	fs.StringVar(&m.subGIDMap, "subgidmap", "", "subgid GID map for a group")
}

// check validates the ID-mapping flags. The host mapping (--hostuidmap, --hostgidmap) is what
// the store does anyway; any real mapping is not supported.
func (m *idMapFlags) check(op string) error {
	if m.hostUIDMap && (m.uidMap != "" || m.subUIDMap != "") {
		return fmt.Errorf("%s: host uid map specified along with UID mapping: %w", op, errdefs.ErrInvalidArgument)
	}
	if m.hostGIDMap && (m.gidMap != "" || m.subGIDMap != "") {
		return fmt.Errorf("%s: host gid map specified along with GID mapping: %w", op, errdefs.ErrInvalidArgument)
	}
	if m.uidMap != "" || m.gidMap != "" || m.subUIDMap != "" || m.subGIDMap != "" {
		return fmt.Errorf("%s: --uidmap/--gidmap/--subuidmap/--subgidmap: %w", op, core.ErrIDMapsNotSupported)
	}
	return nil
}

// readMetadata returns the -m value, or the contents of the -f file when one was given.
func (f *cmdFlags) readMetadata() (string, error) {
	if f.metadataFile == "" {
		return f.metadata, nil
	}
	b, err := os.ReadFile(f.metadataFile)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// input opens the -f file, or returns stdin when none was given.
func (inv *invocation) input() (io.ReadCloser, error) {
	if inv.flags.file == "" {
		return io.NopCloser(inv.stdin), nil
	}
	return os.Open(inv.flags.file)
}

// notSupported is the error of commands and flags the store cannot serve.
func notSupported(what string) error {
	return fmt.Errorf("%s: %w", what, errdefs.ErrNotSupported)
}

var errNoMetadata = errors.New("no new metadata provided")
