package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/pluggable-storage/storage/core/internal/lockfile"
	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi"
)

// Store is an open graph root and run root. It is safe for concurrent use by several goroutines;
// other processes may use the same roots at the same time.
//
// Locking contract. Within the process, s.mu serialises every public method but Close (see
// Abort below) and the accessors of fixed fields. Across processes
// each method takes the fcntl lock files in the order of SPEC-disk §1.6: storage.lock (the graph
// lock), layers.lock (then the split store's and the read-only stores'), images.lock (likewise),
// containers.lock, then mountpoints.lock. Write methods take them all exclusive (the read-only
// stores' always shared), Shutdown also takes the graph lock exclusive, read methods take
// shared every lock, and lookups of one kind only that kind's locks. Locks are held for the
// whole method, so a writer's changes to several kinds appear to other processes at once.
// Each kind is re-read from disk only when its lock's token changed.
//
// The driver plugin is started only by methods that need layer contents (create, delete, mount,
// diff, apply, changes, status, wipe, shutdown with a mounted home); lookups, listing, names,
// metadata, big data and version never start it.
//
// Abort. Close does not take s.mu: it cancels ctx, which every reader-fed copy (CreateLayer,
// ApplyDiff) observes, and stops the plugin, which fails the driver call in flight; the method
// holding s.mu then returns, and the lock files are closed once s.mu is free.
type Store struct {
	mu sync.Mutex

	// ctx is cancelled by Close; cancel is its CancelFunc. Neither needs s.mu.
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool // set by Close (or a failed Open) before anything is released

	opts       Options
	graphRoot  string
	runRoot    string
	driverName string
	readOnly   bool
	log        hclog.Logger

	graphLock  *lockfile.LockFile
	layers     *kindStore[Layer, *Layer]
	images     *kindStore[Image, *Image]
	containers *kindStore[Container, *Container]
	mounts     *mountStore
	splitRoot  string               // the split image store (Options.ImageStore), "" if none
	ro         []*roStore           // additional read-only image stores, in search order
	locks      []*lockfile.LockFile // every lock file, in lock order
	lockKinds  []kinds              // what each of locks guards
	held       kinds                // the kinds locked by the running method

	client       *pluginapi.Client // nil until found
	clientErr    error             // why the plugin could not be found, reported on first use
	digests      digestIndex
	graphSeen    bool // the graph lock's token has been read once
	driverInited bool
	// removeFailed: incomplete layers this Store failed to remove; not retried until the next
	// Open (a new Store), so that one stuck layer costs one attempt, not one per method.
	removeFailed map[string]bool
}

// Open opens (creating if needed, unless opts.ReadOnly) the store at opts.GraphRoot and
// opts.RunRoot. If opts.Driver is empty a driver is picked as SPEC-disk §1.8 says, which may
// start plugins; otherwise no plugin is started. A RW open removes layers left incomplete by a
// killed process, which does start the plugin; a layer the driver fails to remove does not fail
// Open: it is logged (Warn, with the layer and the error) and keeps its incomplete record.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.GraphRoot == "" || opts.RunRoot == "" {
		return nil, fmt.Errorf("open store: graph root and run root must both be set: %w", errdefs.ErrInvalidArgument)
	}
	graphRoot, err := filepath.Abs(opts.GraphRoot)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", withClass(err, errdefs.ErrInvalidArgument))
	}
	runRoot, err := filepath.Abs(opts.RunRoot)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", withClass(err, errdefs.ErrInvalidArgument))
	}
	s := &Store{opts: opts, graphRoot: graphRoot, runRoot: runRoot, readOnly: opts.ReadOnly, log: opts.Logger,
		removeFailed: map[string]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.ImageStore != "" {
		if s.splitRoot, err = filepath.Abs(opts.ImageStore); err != nil {
			return nil, fmt.Errorf("open store: %w", withClass(err, errdefs.ErrInvalidArgument))
		}
		if s.splitRoot == graphRoot {
			return nil, fmt.Errorf("open store: image store %s is the graph root: %w", s.splitRoot, errdefs.ErrInvalidArgument)
		}
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.driverName = opts.Driver
	if s.driverName == "overlay2" {
		s.log.Warn("driver overlay2 is an alias of overlay")
		s.driverName = "overlay"
	}
	if !s.readOnly {
		for _, d := range []string{graphRoot, runRoot, s.splitRoot} {
			if d == "" {
				continue
			}
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, fmt.Errorf("open store: create %s: %w", d, withClass(err, errdefs.ErrUnavailable))
			}
		}
	}
	if s.driverName == "" {
		if err := s.pickDriver(ctx); err != nil {
			return nil, err
		}
	} else {
		s.client, s.clientErr = s.newClient(s.driverName)
	}
	if err := s.openFiles(); err != nil {
		s.closeAll()
		return nil, err
	}
	end, err := s.begin(false)
	if err != nil {
		s.closeAll()
		return nil, fmt.Errorf("open store %s: %w", graphRoot, err)
	}
	end()
	return s, nil
}

func (s *Store) dir(kind string) string    { return filepath.Join(s.graphRoot, s.driverName+"-"+kind) }
func (s *Store) runDir(kind string) string { return filepath.Join(s.runRoot, s.driverName+"-"+kind) }

// openFiles creates the directories and opens the lock files of SPEC-disk §1.1, in lock order:
// storage.lock; the layer locks (graph root, then the split store's); the additional
// read-only stores' layer locks; the image locks (the split store's, then the graph root's);
// the read-only stores' image locks; the container lock; mountpoints.lock.
func (s *Store) openFiles() error {
	layersDir, imagesDir, containersDir := s.dir("layers"), s.dir("images"), s.dir("containers")
	runLayersDir, runContainersDir := s.runDir("layers"), s.runDir("containers")
	dirs := []string{filepath.Join(s.graphRoot, s.driverName), layersDir, imagesDir, containersDir, runLayersDir, runContainersDir, s.runDir("images")}
	if s.splitRoot != "" {
		dirs = append(dirs, s.splitDir("layers"), s.splitDir("images"))
	}
	if !s.readOnly {
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("open store: create %s: %w", d, withClass(err, errdefs.ErrUnavailable))
			}
		}
	}
	open := func(path string, k kinds) (*lockfile.LockFile, error) {
		l, err := lockfile.Open(path, s.readOnly)
		if err != nil {
			return nil, fmt.Errorf("open store: open lock %s: %w", path, withClass(err, errdefs.ErrUnavailable))
		}
		s.locks = append(s.locks, l)
		s.lockKinds = append(s.lockKinds, k)
		return l, nil
	}
	var err error
	if s.graphLock, err = open(filepath.Join(s.graphRoot, "storage.lock"), kGraph); err != nil {
		return err
	}

	containersLockDir, volatileLayersDir := containersDir, layersDir
	if s.opts.TransientStore {
		containersLockDir, volatileLayersDir = runContainersDir, runLayersDir
	}
	layersLock, err := open(filepath.Join(layersDir, "layers.lock"), kLayers)
	if err != nil {
		return err
	}
	layerFiles := map[int]*jsonFile{
		locStable:   {path: filepath.Join(layersDir, "layers.json"), lock: layersLock},
		locVolatile: {path: filepath.Join(volatileLayersDir, "volatile-layers.json"), lock: layersLock, noSync: true, optional: true},
	}
	if s.splitRoot != "" {
		splitLock, err := open(filepath.Join(s.splitDir("layers"), "layers.lock"), kLayers)
		if err != nil {
			return err
		}
		layerFiles[locSplit] = &jsonFile{path: filepath.Join(s.splitDir("layers"), "layers.json"), lock: splitLock}
	}
	var roImageLocks []*lockfile.LockFile
	for _, root := range additionalImageStores(s.driverName, s.opts.DriverOptions) {
		if root == s.graphRoot || root == s.splitRoot {
			continue // locking our own files twice would deadlock
		}
		r, ll, il, err := s.openROStore(root)
		if err != nil {
			return err
		}
		s.ro = append(s.ro, r)
		s.locks = append(s.locks, ll)
		s.lockKinds = append(s.lockKinds, kLayers)
		roImageLocks = append(roImageLocks, il)
	}
	imageFiles := map[int]*jsonFile{}
	if s.splitRoot != "" {
		splitLock, err := open(filepath.Join(s.splitDir("images"), "images.lock"), kImages)
		if err != nil {
			return err
		}
		imageFiles[locSplit] = &jsonFile{path: filepath.Join(s.splitDir("images"), "images.json"), lock: splitLock}
	}
	imagesLock, err := open(filepath.Join(imagesDir, "images.lock"), kImages)
	if err != nil {
		return err
	}
	imageFiles[locStable] = &jsonFile{path: filepath.Join(imagesDir, "images.json"), lock: imagesLock}
	for _, l := range roImageLocks {
		s.locks = append(s.locks, l)
		s.lockKinds = append(s.lockKinds, kImages)
	}
	containersLock, err := open(filepath.Join(containersLockDir, "containers.lock"), kContainers)
	if err != nil {
		return err
	}
	mountsLock, err := open(filepath.Join(runLayersDir, "mountpoints.lock"), kMounts)
	if err != nil {
		return err
	}
	s.layers = newKindStore[Layer, *Layer]("layer", layerFiles)
	s.images = newKindStore[Image, *Image]("image", imageFiles)
	s.containers = newKindStore[Container, *Container]("container", map[int]*jsonFile{
		locStable:   {path: filepath.Join(containersDir, "containers.json"), lock: containersLock},
		locVolatile: {path: filepath.Join(containersLockDir, "volatile-containers.json"), lock: containersLock, noSync: true, optional: true},
	})
	s.mounts = newMountStore(mountsLock, filepath.Join(runLayersDir, "mountpoints.json"))
	return nil
}

// splitDir is <imagestore>/<driver>-<kind> of the split store.
func (s *Store) splitDir(kind string) string {
	return filepath.Join(s.splitRoot, s.driverName+"-"+kind)
}

// kinds is a set of the things a method needs locked and up to date.
type kinds uint8

const (
	kGraph kinds = 1 << iota // storage.lock: driver reinitialisation after another's Shutdown
	kLayers
	kImages
	kContainers
	kMounts
	kAll = kGraph | kLayers | kImages | kContainers | kMounts
)

// begin takes the Store mutex and every lock file (shared or exclusive), and brings the
// in-memory tables up to date. The returned func releases everything.
//
// A shared pass that finds incomplete layers (or names to fix) in a RW store starts over
// exclusively, because removing them (SPEC-disk §3.1) is a write.
func (s *Store) begin(write bool) (func(), error) { return s.beginMode(write, false, kAll) }

// beginRead is a shared begin that locks and refreshes only the kinds in need: the lookups
// that read one kind use it, so they touch as few lock files as possible.
func (s *Store) beginRead(need kinds) (func(), error) { return s.beginMode(false, false, need) }

// beginMode is begin, with the graph lock taken exclusive when graphWrite is set (Shutdown),
// and only the kinds of need locked when shared. Write passes always lock everything.
func (s *Store) beginMode(write, graphWrite bool, need kinds) (func(), error) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, fmt.Errorf("store is closed: %w", errdefs.ErrUnavailable)
	}
	if write && s.readOnly {
		s.mu.Unlock()
		return nil, ErrStoreIsReadOnly
	}
	for {
		if write || graphWrite {
			need = kAll
		}
		s.lockAll(write, graphWrite, need)
		escalate, err := s.refreshAll(write, need)
		if err != nil {
			s.unlockAll()
			s.mu.Unlock()
			return nil, err
		}
		if escalate && !write && !s.readOnly {
			s.unlockAll()
			write = true
			continue
		}
		return func() { s.unlockAll(); s.mu.Unlock() }, nil
	}
}

// lockAll takes the lock files of need in lock order. graphWrite takes the graph lock
// exclusive even when write is false.
func (s *Store) lockAll(write, graphWrite bool, need kinds) {
	s.held = need
	for i, l := range s.locks {
		if s.lockKinds[i]&need == 0 {
			continue
		}
		if (write || (i == 0 && graphWrite)) && !l.ReadOnly() {
			l.Lock()
		} else {
			l.RLock()
		}
	}
}

func (s *Store) unlockAll() {
	for i := len(s.locks) - 1; i >= 0; i-- {
		if s.lockKinds[i]&s.held != 0 {
			s.locks[i].Unlock()
		}
	}
	s.held = 0
}

// refreshAll reloads what other writers changed, for the kinds of need. With write held it
// also saves name fixes found on load and removes incomplete layers; without, it reports
// whether either is waiting for a write lock.
func (s *Store) refreshAll(write bool, need kinds) (needWrite bool, err error) {
	if need&kGraph != 0 {
		if mod, err := s.graphLock.Modified(); err != nil {
			return false, fmt.Errorf("check %s: %w", s.graphRoot, withClass(err, errdefs.ErrUnavailable))
		} else if mod && s.driverInited && s.graphSeen {
			// Another user shut the driver down: initialise it again before the next use.
			s.driverInited = false
		}
		s.graphSeen = true
	}
	reloaded := false
	if need&kLayers != 0 {
		if reloaded, err = s.layers.refresh(); err != nil {
			return false, err
		}
		if err := s.refreshROLayers(); err != nil {
			return false, err
		}
	}
	if need&kImages != 0 {
		if imagesReloaded, err := s.images.refresh(); err != nil {
			return false, err
		} else if imagesReloaded {
			for _, img := range s.images.t.items {
				recomputeDigests(img)
			}
			s.imagesChanged()
		}
		if err := s.refreshROImages(); err != nil {
			return false, err
		}
	}
	if need&kContainers != 0 {
		if _, err := s.containers.refresh(); err != nil {
			return false, err
		}
	}
	if need&kMounts != 0 {
		if err := s.mounts.refresh(); err != nil {
			return false, err
		}
	}
	if !write {
		if (need&kLayers != 0 && s.layers.needSave) || (need&kImages != 0 && s.images.needSave) ||
			(need&kContainers != 0 && s.containers.needSave) {
			return true, nil
		}
		if need&kLayers != 0 && reloaded {
			for _, l := range s.layers.t.items {
				if l.incomplete() && !s.removeFailed[l.ID] {
					return true, nil
				}
			}
		}
		return false, nil
	}
	for _, k := range []interface{ saveIfNeeded() error }{s.layers, s.images, s.containers} {
		if err := k.saveIfNeeded(); err != nil {
			return false, err
		}
	}
	s.removeIncompleteLayers()
	return false, nil
}

func (k *kindStore[T, P]) saveIfNeeded() error {
	if !k.needSave {
		return nil
	}
	return k.save()
}

// Close stops the driver plugin if this Store started it and releases the lock files. It does
// not unmount anything and does not run the driver's Cleanup (that is Shutdown's job). Close is
// idempotent, safe to call from any goroutine, and never waits for a running method.
//
// Abort contract. Close may be called while another goroutine is inside a method (for
// instance CreateLayer reading a tar from a stream that never ends): it cancels the Store's
// context, which ends any read of the caller's stream and any driver call, and kills the plugin
// (pluginapi.Client.Close), so the driver call in flight fails with ErrPluginDied or
// ErrUnavailable. That method then returns an error (of class ErrUnavailable) and releases the
// locks. What it leaves is what a killed process leaves: a layer being created or deleted
// keeps its record flagged incomplete, with or without its driver layer, and the next
// read-write Open removes both; other records are untouched. Every method called after Close
// fails with ErrUnavailable.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	return s.release()
}

// release cancels the Store's context and stops the plugin without s.mu, then closes the lock
// files: at once if s.mu is free, else once the running method has released it. s.closed is
// already set, so no method starts after the running one.
func (s *Store) release() error {
	s.cancel()
	var errs []error
	if s.client != nil {
		if err := s.client.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop driver %s: %w", s.driverName, err))
		}
	}
	if s.mu.TryLock() {
		errs = append(errs, s.closeLocks())
		s.mu.Unlock()
		return errors.Join(errs...)
	}
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.closeLocks(); err != nil {
			s.log.Warn("close lock files", "error", err)
		}
	}()
	return errors.Join(errs...)
}

// closeAll ends a Store whose Open failed. s.mu free.
func (s *Store) closeAll() error {
	s.closed.Store(true)
	return s.release()
}

// closeLocks closes every lock file. s.mu held, and no lock file held.
func (s *Store) closeLocks() error {
	var errs []error
	for _, l := range s.locks {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.locks = nil
	s.lockKinds = nil
	return errors.Join(errs...)
}

// GraphRoot returns the absolute graph root.
func (s *Store) GraphRoot() string { return s.graphRoot }

// RunRoot returns the absolute run root.
func (s *Store) RunRoot() string { return s.runRoot }

// DriverName returns the name of the graph driver ("vfs", "overlay", ...).
func (s *Store) DriverName() string { return s.driverName }

// GraphOptions returns the driver options as configured.
func (s *Store) GraphOptions() []string { return cloneStrings(s.opts.DriverOptions) }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// DriverStarted reports whether this Store has started its driver plugin.
func (s *Store) DriverStarted() bool { return s.client != nil && s.client.Started() }

// opContext returns a context that ends with ctx or when the Store is closed, whichever comes
// first: the context of a method's driver calls and copy loops. The caller calls done when the
// method (or the stream it returned) is finished.
func (s *Store) opContext(ctx context.Context) (_ context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.ctx, func() { cancel(errStoreClosed) })
	return ctx, func() { stop(); cancel(nil) }
}

// errStoreClosed is the cause of a method's context ended by Close.
var errStoreClosed = fmt.Errorf("store is closed: %w", errdefs.ErrUnavailable)
