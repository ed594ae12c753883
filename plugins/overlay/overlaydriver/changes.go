package overlaydriver

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/archive"
)

// upperChanges lists a layer's changes from its upper directory alone, against the view its
// lowers (absolute diff directories, nearest first) give of its parent:
//   - a whiteout (0/0 character device) is a Delete of its path;
//   - any other entry is an Add when the parent's view lacks the path, else a Modify (overlayfs
//     copies a directory up only when something in or below it changed, so every copied-up
//     directory is reported, as the established tool does);
//   - an opaque directory that replaced one of the parent also hides the parent's children: each
//     that the upper does not hold again is a Delete.
//
// The result is sorted by path. The layer must not be written meanwhile.
func upperChanges(ctx context.Context, upper string, lowers []string) ([]archive.Change, error) {
	view := lowerView(lowers)
	var changes []archive.Change
	err := filepath.WalkDir(upper, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel := "/" + filepath.ToSlash(p[len(upper)+1:])
		if de.Type()&fs.ModeCharDevice != 0 && isWhiteoutPath(p) {
			changes = append(changes, archive.Change{Path: rel, Kind: archive.ChangeDelete})
			return nil
		}
		inParent := view.exists(rel)
		kind := archive.ChangeAdd
		if inParent {
			kind = archive.ChangeModify
		}
		changes = append(changes, archive.Change{Path: rel, Kind: kind})
		if de.IsDir() && inParent && isOpaque(p) {
			for _, name := range view.readDir(rel) {
				if _, err := os.Lstat(filepath.Join(p, name)); err != nil {
					changes = append(changes, archive.Change{Path: path.Join(rel, name), Kind: archive.ChangeDelete})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("changes in %s: %w", upper, classify(err))
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, nil
}

func isWhiteoutPath(p string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(dir string) bool {
	v, err := getxattr(dir, overlayOpaqueXattr)
	return err == nil && string(v) == "y"
}

// lowerView answers questions about the merged view of a stack of overlay layers (diff
// directories, top first) without mounting it.
type lowerView []string

// exists reports whether rel ("/a/b") is visible in the merged view.
func (v lowerView) exists(rel string) bool {
	for _, l := range v {
		p := filepath.Join(l, rel)
		if _, err := os.Lstat(p); err == nil {
			return !isWhiteoutPath(p)
		}
		if v.hidesBelow(l, rel) {
			return false
		}
	}
	return false
}

// hidesBelow reports whether layer l hides rel in every layer below it: an ancestor of rel in l
// is a whiteout, a non-directory or an opaque directory.
func (v lowerView) hidesBelow(l, rel string) bool {
	for dir := path.Dir(rel); dir != "/" && dir != "."; dir = path.Dir(dir) {
		p := filepath.Join(l, dir)
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if !fi.IsDir() || isOpaque(p) {
			return true
		}
	}
	return false
}

// readDir lists the names visible in directory rel of the merged view.
func (v lowerView) readDir(rel string) []string {
	seen := map[string]bool{}
	var names []string
	for _, l := range v {
		p := filepath.Join(l, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			if v.hidesBelow(l, rel) {
				break
			}
			continue
		}
		if !fi.IsDir() {
			break
		}
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if seen[e.Name()] {
				continue
			}
			seen[e.Name()] = true
			if e.Type()&fs.ModeCharDevice != 0 && isWhiteoutPath(filepath.Join(p, e.Name())) {
				continue
			}
			names = append(names, e.Name())
		}
		if isOpaque(p) {
			break
		}
	}
	sort.Strings(names)
	return names
}
