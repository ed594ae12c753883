package archive

import (
	"context"
	"fmt"
	"maps"
	"sort"

	"golang.org/x/sys/unix"
)

// Changes compares the tree dir with the tree parentDir ("" compares with nothing: every path
// is an Add) and returns the changed paths ("/a/b"), sorted by path.
//
// The semantics are those of the established tool's ChangesDirs: a path only in dir is an Add,
// a path only in parentDir a Delete (a removed directory is reported alone, not its children);
// a path in both is a Modify when its type, mode, owner, device number, symlink target or
// xattrs differ or, for non-directories, its size or mtime (two mtimes are the same when their
// seconds match and their nanoseconds match or either is zero, since tars keep seconds only). A
// directory whose only difference is its mtime is not reported, but a directory with changes
// below it is reported as a Modify (so its metadata travels with the diff). Neither tree may
// change while Changes runs.
func Changes(ctx context.Context, dir, parentDir string) ([]Change, error) {
	newRoot, err := collectTree(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("changes of %s: %w", dir, classifyTree(err))
	}
	var oldRoot *treeNode
	if parentDir != "" {
		if oldRoot, err = collectTree(ctx, parentDir); err != nil {
			return nil, fmt.Errorf("changes of %s against %s: %w", dir, parentDir, classifyTree(err))
		}
	}
	var changes []Change
	newRoot.addChanges(oldRoot, &changes)
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, nil
}

// treeNode is one file of a collected tree.
type treeNode struct {
	path     string // "/a/b"; "/" for the root
	meta     *fileMeta
	children map[string]*treeNode
	added    bool
}

func collectTree(ctx context.Context, dir string) (*treeNode, error) {
	root := &treeNode{path: "/", meta: &fileMeta{}, children: map[string]*treeNode{}}
	root.meta.st.Mode = unix.S_IFDIR
	byRel := map[string]*treeNode{"": root}
	err := walkTree(dir, func(rel string, _ int, name string, m *fileMeta) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		parentRel, _ := splitRel(rel)
		n := &treeNode{path: "/" + rel, meta: m}
		if m.isDir() {
			n.children = map[string]*treeNode{}
			byRel[rel] = n
		}
		byRel[parentRel].children[name] = n
		return nil
	})
	return root, err
}

func (n *treeNode) isDir() bool { return n.meta.isDir() }

// addChanges appends the changes of n (and below) relative to old (nil: n is new), following
// the established tool's algorithm.
func (n *treeNode) addChanges(old *treeNode, changes *[]Change) {
	start := len(*changes)
	if old == nil && n.path != "/" {
		*changes = append(*changes, Change{Path: n.path, Kind: ChangeAdd})
		n.added = true
	}
	// Children of old are only compared when n is a directory too; otherwise the Modify or
	// Add of n covers whatever was below old.
	oldChildren := map[string]*treeNode{}
	if old != nil && n.isDir() {
		maps.Copy(oldChildren, old.children)
	}
	for name, child := range n.children {
		oldChild := oldChildren[name]
		if oldChild != nil {
			if metaDiffers(oldChild.meta, child.meta) {
				*changes = append(*changes, Change{Path: child.path, Kind: ChangeModify})
				child.added = true
			}
			delete(oldChildren, name)
		}
		child.addChanges(oldChild, changes)
	}
	for _, oldChild := range oldChildren {
		*changes = append(*changes, Change{Path: oldChild.path, Kind: ChangeDelete})
	}
	if len(*changes) > start && n.isDir() && !n.added && n.path != "/" {
		*changes = append(*changes, Change{Path: n.path, Kind: ChangeModify})
	}
}

func metaDiffers(a, b *fileMeta) bool {
	if a.st.Mode != b.st.Mode || a.st.Uid != b.st.Uid || a.st.Gid != b.st.Gid || a.st.Rdev != b.st.Rdev {
		return true
	}
	if !a.isDir() && (a.st.Size != b.st.Size || !sameFsTime(a.st.Mtim, b.st.Mtim)) {
		return true
	}
	return a.target != b.target || !maps.Equal(a.xattrs, b.xattrs)
}

func sameFsTime(a, b unix.Timespec) bool {
	return a.Sec == b.Sec && (a.Nsec == b.Nsec || a.Nsec == 0 || b.Nsec == 0)
}
