package core

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// record is what a table holds: a layer, an image or a container.
type record interface {
	recordID() string
	recordNames() []string
	setRecordNames([]string)
}

// table is the in-memory form of one kind's records with its lookup indexes. Every lookup is a
// map access or a binary search, so its cost does not grow with the number of records.
//
// A table is only touched while the Store's mutex is held and the kind's lock file is locked
// (read for lookups, write for changes).
type table[P record] struct {
	kind   string // "layer", "image", "container": used in error texts
	items  []P    // creation order (the order of the JSON files)
	byID   map[string]P
	byName map[string]P
	sorted []string // IDs in lexical order, for unique-prefix lookups
}

func newTable[P record](kind string) *table[P] {
	return &table[P]{kind: kind, byID: map[string]P{}, byName: map[string]P{}}
}

// reset replaces the contents with items. A name held by two items is taken away from the
// earlier one (SPEC-disk §3.3); fixed reports whether that happened, so a RW store re-saves.
func (t *table[P]) reset(items []P) (fixed bool) {
	t.items = items
	t.byID = make(map[string]P, len(items))
	t.byName = make(map[string]P, len(items))
	t.sorted = make([]string, 0, len(items))
	for _, it := range items {
		if _, dup := t.byID[it.recordID()]; !dup {
			t.sorted = append(t.sorted, it.recordID())
		}
		t.byID[it.recordID()] = it
		for _, n := range it.recordNames() {
			if prev, ok := t.byName[n]; ok && prev.recordID() != it.recordID() {
				prev.setRecordNames(without(prev.recordNames(), n))
				fixed = true
			}
			t.byName[n] = it
		}
	}
	sort.Strings(t.sorted)
	return fixed
}

func (t *table[P]) add(it P) {
	t.items = append(t.items, it)
	t.byID[it.recordID()] = it
	for _, n := range it.recordNames() {
		t.byName[n] = it
	}
	id := it.recordID()
	i, _ := slices.BinarySearch(t.sorted, id)
	t.sorted = slices.Insert(t.sorted, i, id)
}

func (t *table[P]) remove(id string) {
	it, ok := t.byID[id]
	if !ok {
		return
	}
	delete(t.byID, id)
	for _, n := range it.recordNames() {
		if x, ok := t.byName[n]; ok && x.recordID() == it.recordID() {
			delete(t.byName, n)
		}
	}
	if i, found := slices.BinarySearch(t.sorted, id); found {
		t.sorted = slices.Delete(t.sorted, i, i+1)
	}
	for i, x := range t.items {
		if x.recordID() == id {
			t.items = slices.Delete(t.items, i, i+1)
			break
		}
	}
}

// get resolves ref: exact ID, then name, then unique ID prefix (SPEC-disk §3.2).
func (t *table[P]) get(ref string) (P, bool) {
	if it, ok := t.byID[ref]; ok {
		return it, true
	}
	if it, ok := t.byName[ref]; ok {
		return it, true
	}
	var zero P
	if ref == "" {
		return zero, false
	}
	i, _ := slices.BinarySearch(t.sorted, ref)
	if i < len(t.sorted) && strings.HasPrefix(t.sorted[i], ref) {
		if i+1 < len(t.sorted) && strings.HasPrefix(t.sorted[i+1], ref) {
			return zero, false // ambiguous
		}
		return t.byID[t.sorted[i]], true
	}
	return zero, false
}

// setNames gives it exactly names, taking each away from any other item that holds it.
func (t *table[P]) setNames(it P, names []string) {
	for _, n := range it.recordNames() {
		if x, ok := t.byName[n]; ok && x.recordID() == it.recordID() {
			delete(t.byName, n)
		}
	}
	names = dedup(names)
	for _, n := range names {
		if other, ok := t.byName[n]; ok && other.recordID() != it.recordID() {
			other.setRecordNames(without(other.recordNames(), n))
		}
		t.byName[n] = it
	}
	it.setRecordNames(names)
}

// checkNew fails if id or one of names is already taken in this table.
func (t *table[P]) checkNew(id string, names []string) error {
	if _, ok := t.byID[id]; ok {
		return fmt.Errorf("create %s %s: %w", t.kind, id, ErrDuplicateID)
	}
	for _, n := range names {
		if holder, ok := t.byName[n]; ok {
			return fmt.Errorf("create %s: name %q is already associated with %s %s: %w", t.kind, n, t.kind, holder.recordID(), ErrDuplicateName)
		}
	}
	return nil
}

func without(list []string, drop string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// dedup removes repeated and empty strings, keeping the first occurrence's position.
func dedup(list []string) []string {
	seen := make(map[string]bool, len(list))
	var out []string
	for _, s := range list {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}
