package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/pluggable-storage/storage/core/internal/atomicfile"
	"github.com/pluggable-storage/storage/core/internal/lockfile"
	"github.com/pluggable-storage/storage/errdefs"
)

// persisted is a record type that lives in one of its kind's JSON files (its location).
type persisted interface {
	record
	location() int
	setLocation(int)
}

// Record locations: which file of its kind a record is kept in.
const (
	locStable   = 0 // <kind>.json in the graph root
	locVolatile = 1 // volatile-<kind>.json (layers and containers), written without fsync
	locSplit    = 2 // the split store's file (layers: read-only layers; images: every new image)
)

// jsonFile is one location of a kind: a JSON file and the lock that guards it.
type jsonFile struct {
	path   string
	lock   *lockfile.LockFile
	noSync bool // volatile: no fsync on write
	// optional: the file is removed rather than written when it would be empty.
	optional bool
}

// kindStore is one kind's JSON files and lock files.
//
// Locking contract: every method requires the Store mutex and the kind's locks held (read or
// write, as each method says). A reload happens only when one of the lock files' last-writer
// token changed since this kindStore last looked (another process or another Store wrote), so
// a long-lived Store sees other writers' changes and an idle one re-reads nothing.
//
// Crash contract: each file is replaced with atomicfile (temporary file, fsync, rename, dir
// fsync); volatile files skip the fsyncs. A reader therefore sees the old or the new file,
// never a mix. After a successful save every lock's token is rewritten so other users reload.
type kindStore[T any, P interface {
	*T
	persisted
}] struct {
	files  map[int]*jsonFile // by location
	stable string            // path of the stable file, for messages
	t      *table[P]
	loaded bool
	// needSave: the in-memory table differs from the files (a name fixed on load in a
	// read-locked pass); the next write-locked operation saves it.
	needSave bool
}

func newKindStore[T any, P interface {
	*T
	persisted
}](kind string, files map[int]*jsonFile) *kindStore[T, P] {
	return &kindStore[T, P]{files: files, stable: files[locStable].path, t: newTable[P](kind)}
}

// locks returns the distinct lock files of the kind, in location order.
func (k *kindStore[T, P]) locks() []*lockfile.LockFile {
	var out []*lockfile.LockFile
	for _, loc := range k.locations() {
		l := k.files[loc].lock
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func (k *kindStore[T, P]) locations() []int {
	locs := make([]int, 0, len(k.files))
	for loc := range k.files {
		locs = append(locs, loc)
	}
	slices.Sort(locs)
	return locs
}

// refresh reloads the files if another writer changed them since the last load. Locks held
// (read or write).
func (k *kindStore[T, P]) refresh() (reloaded bool, err error) {
	modified := false
	for _, l := range k.locks() {
		m, err := l.Modified()
		if err != nil {
			return false, fmt.Errorf("check %s for changes: %w", k.stable, withClass(err, errdefs.ErrUnavailable))
		}
		modified = modified || m
	}
	if k.loaded && !modified {
		return false, nil
	}
	var items []P
	for _, loc := range k.locations() {
		got, err := readJSONFile[T, P](k.files[loc].path)
		if err != nil {
			k.loaded = false
			return false, err
		}
		for _, it := range got {
			it.setLocation(loc)
		}
		items = append(items, got...)
	}
	if k.t.reset(items) {
		k.needSave = true
	}
	k.loaded = true
	return true, nil
}

// readJSONFile decodes one JSON array file. A missing or empty file is an empty list. A
// damaged file is an ErrCorrupt error naming the file and the byte offset.
func readJSONFile[T any, P interface{ *T }](path string) ([]P, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, withClass(err, errdefs.ErrUnavailable))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	var items []P
	if err := json.Unmarshal(data, &items); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("decode %s at offset %d: %w", path, se.Offset, withClass(err, errdefs.ErrCorrupt))
		case errors.As(err, &te):
			return nil, fmt.Errorf("decode %s at offset %d: %w", path, te.Offset, withClass(err, errdefs.ErrCorrupt))
		}
		return nil, fmt.Errorf("decode %s: %w", path, withClass(err, errdefs.ErrCorrupt))
	}
	// A JSON null in the array would be a nil record.
	out := items[:0]
	for _, it := range items {
		if it != nil {
			out = append(out, it)
		}
	}
	return out, nil
}

// save writes every file of the kind from the table and records the write on its locks.
// Write locks held.
func (k *kindStore[T, P]) save() error {
	byLoc := map[int][]P{}
	for _, loc := range k.locations() {
		byLoc[loc] = []P{}
	}
	for _, it := range k.t.items {
		loc := it.location()
		if _, ok := k.files[loc]; !ok {
			loc = locStable
		}
		byLoc[loc] = append(byLoc[loc], it)
	}
	for _, loc := range k.locations() {
		f := k.files[loc]
		if f.optional && len(byLoc[loc]) == 0 {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", f.path, withClass(err, errdefs.ErrUnavailable))
			}
			continue
		}
		if err := writeJSONFile(f.path, byLoc[loc], f.noSync); err != nil {
			return err
		}
	}
	for _, l := range k.locks() {
		if err := l.RecordWrite(); err != nil {
			return fmt.Errorf("record write on the lock of %s: %w", k.stable, withClass(err, errdefs.ErrUnavailable))
		}
	}
	k.needSave = false
	return nil
}

func writeJSONFile(path string, v any, noSync bool) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, withClass(err, errdefs.ErrInvalidArgument))
	}
	if err := atomicfile.WriteFile(path, data, 0o600, noSync); err != nil {
		return fmt.Errorf("write %s: %w", path, withClass(err, errdefs.ErrUnavailable))
	}
	return nil
}
