package pluginapi

import (
	"context"
	"io"

	"github.com/pluggable-storage/storage/archive"
)

// APIVersion is the version of the driver contract this build speaks. It is also go-plugin's
// protocol version, so a host and a plugin built from different contract versions fail the
// handshake with an error naming both versions.
const APIVersion = 1

// Capabilities a driver can advertise in Info.Capabilities. A driver lists only what it really has
// on this kernel and file system, as found by Init.
const (
	// CapNativeDiff: Diff, ApplyDiff and Changes read or write the layer's own upper directory
	// instead of comparing two mounted trees.
	CapNativeDiff = "native-diff"
	// CapQuota: CreateOpts.StorageOpt["size"] is enforced.
	CapQuota = "quota"
	// CapReadOnlyMount: Get honours MountOpts.ReadOnly with a read-only mount.
	CapReadOnlyMount = "read-only-mount"
)

// Info identifies a driver and what it can do.
type Info struct {
	Name         string   // stable driver name: "vfs", "overlay", ...; the store uses it in paths
	Version      string   // the driver's own version, for `status` and logs
	APIVersions  []int    // contract versions the driver speaks
	Capabilities []string // Cap* values, valid after Init
}

// InitOptions is what the store hands a driver before any other call.
type InitOptions struct {
	// Home is the driver's directory in the graph root, <graphroot>/<name>. The driver owns it.
	Home string
	// RunHome is the driver's directory in the run root, <runroot>/<name> (feature caches).
	RunHome string
	// GraphRoot and RunRoot are the store's roots, for drivers that need them (zfs finds its
	// dataset from the graph root).
	GraphRoot string
	RunRoot   string
	// Options are the driver options as "key=value" strings, exactly as configured: keys may carry
	// the driver's prefix ("overlay.mountopt=nodev", "overlay2.", or "."). The driver validates
	// them and rejects an unknown key with ErrInvalidArgument naming the key.
	Options []string
}

// CreateOpts are the per-layer options of Create.
type CreateOpts struct {
	// ReadWrite asks for a layer that will be mounted read-write (a container's layer). A driver
	// may treat read-only and read-write layers alike.
	ReadWrite bool
	// MountLabel is the SELinux label for mounts of this layer ("" without SELinux).
	MountLabel string
	// StorageOpt are per-layer options such as "size" (quota). Unknown keys are
	// ErrInvalidArgument; "size" on a driver without CapQuota is ErrNotSupported.
	StorageOpt map[string]string
}

// MountOpts are the options of Get.
type MountOpts struct {
	MountLabel string
	// Options are extra mount options ("nodev", "ro", ...).
	Options []string
	// ReadOnly asks for a read-only view (an image mount).
	ReadOnly bool
}

// ProtoDriver is the layer half of a graph driver.
//
// Vocabulary: a layer is a directory tree the driver keeps under Home, named by an ID the store
// chooses. It has at most one parent, given at Create; the driver makes the new layer start with
// the parent's contents (a copy, a snapshot, or an overlay lower). Mounting (Get) makes the layer's
// full contents visible at a path and returns it; unmounting (Put) undoes that.
//
// Lifecycle: Info may be called at any time. Init is called once per driver process before any
// other call, and again with the same options if the process is restarted. Then any number of
// Create, Get, Put, Diff, ApplyDiff, ... calls, possibly concurrent for different layers. Cleanup
// is the last call: it unmounts whatever the driver mounted and undoes what Init did to the host
// (overlay's private bind mount of Home), after which the process may exit.
//
// State: a driver keeps no state in memory that is not also on disk. Mount reference counts are
// the store's (mountpoints.json); the driver's Get is idempotent (a second Get of a mounted layer
// returns the same path without mounting again) and Put unmounts whatever the count was. A driver
// process may therefore be killed and restarted between any two calls.
//
// Errors wrap the errdefs classes: an unknown layer is ErrNotFound naming the ID, an ID that
// exists is ErrAlreadyExists, removing a mounted layer's parent is left to the store.
type ProtoDriver interface {
	// Info identifies the driver. It needs no Init.
	Info(ctx context.Context) (Info, error)
	// Init validates opts, prepares Home and probes the kernel. It returns Info with the
	// capabilities found.
	Init(ctx context.Context, opts InitOptions) (Info, error)
	// Create makes layer id on top of parent ("" for none). The new layer's contents equal the
	// parent's; a base layer's root directory is mode 0555 owned by 0:0. On error nothing of id
	// is left behind.
	Create(ctx context.Context, id, parent string, opts CreateOpts) error
	// Remove deletes layer id and everything the driver keeps for it, unmounting it first.
	// Removing a layer that does not exist succeeds (Remove is idempotent).
	Remove(ctx context.Context, id string) error
	// Get mounts layer id if it is not mounted and returns the path of its contents.
	Get(ctx context.Context, id string, opts MountOpts) (string, error)
	// Put unmounts layer id. Put of a layer that is not mounted succeeds.
	Put(ctx context.Context, id string) error
	// Exists reports whether layer id exists in the driver.
	Exists(ctx context.Context, id string) (bool, error)
	// ListLayers returns the IDs of every layer the driver holds, in no particular order.
	ListLayers(ctx context.Context) ([]string, error)
	// Status returns the driver's diagnostic key/value pairs, in display order.
	Status(ctx context.Context) ([][2]string, error)
	// Metadata returns the driver's facts about layer id (overlay: "MergedDir", "UpperDir",
	// "WorkDir", "LowerDir").
	Metadata(ctx context.Context, id string) (map[string]string, error)
	// Cleanup unmounts everything the driver mounted and undoes Init's changes to the host.
	Cleanup(ctx context.Context) error
}

// Differ is the diff half of a graph driver. parent is the layer to compare with: the layer's own
// parent for a layer diff, any other layer for `changes A B`, or "" to compare with nothing (every
// path is an addition).
//
// Tar streams are uncompressed and use OCI whiteouts (".wh.<name>", ".wh..wh..opq"); directories
// have a trailing "/". Compression and tar-split bookkeeping are the store's.
type Differ interface {
	// Diff returns the tar of the changes from parent to id. The caller must Close the stream;
	// a stream that ends early reports an error from Read, never a clean io.EOF.
	Diff(ctx context.Context, id, parent string) (io.ReadCloser, error)
	// ApplyDiff extracts the tar diff into layer id (whose parent is parent) and returns the
	// number of bytes of regular-file content written, which equals DiffSize(id, parent) for a
	// layer that received nothing else. Every entry stays inside the layer: see archive.Apply.
	ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error)
	// Changes lists the paths that differ between parent and id, sorted by path.
	Changes(ctx context.Context, id, parent string) ([]archive.Change, error)
	// DiffSize returns the bytes of regular-file content that Diff(id, parent) would carry
	// (hard links counted once).
	DiffSize(ctx context.Context, id, parent string) (int64, error)
}

// Driver is a whole graph driver: what a plugin serves and what the store drives.
type Driver interface {
	ProtoDriver
	Differ
}
