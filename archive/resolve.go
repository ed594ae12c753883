package archive

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// inRoot resolves paths inside a layer root. Every lookup goes through openat2 with
// RESOLVE_IN_ROOT, so nothing it returns can be outside the root (see the package doc).
//
// It keeps the last resolved parent directory open: layer tars list a directory's entries
// together, so most entries reuse it. The cached descriptor stays correct because an entry only
// ever removes or replaces names inside the directory it resolved, never that directory itself
// or one of its ancestors; invalidate is called after every removal anyway, as a second line.
type inRoot struct {
	path string // the root as given by the caller; used only for the root's own times
	fd   int    // O_RDONLY|O_DIRECTORY descriptor of the root

	real string // the root's real path, to map resolved descriptors back to relative paths

	cacheRel  string
	cacheReal string
	cacheFd   int // -1 when empty
	cacheOK   bool
}

const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

func openInRoot(root string) (*inRoot, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, classifyTree(&os.PathError{Op: "open", Path: root, Err: err})
	}
	r := &inRoot{path: root, fd: fd, cacheFd: -1}
	if r.real, err = os.Readlink(procPath(fd, "")); err != nil {
		unix.Close(fd)
		return nil, classify(err)
	}
	return r, nil
}

// relOf returns the path of directory fd relative to the root, symlinks resolved: the name
// under which its entries are tracked.
func (r *inRoot) relOf(fd int) (string, error) {
	p, err := os.Readlink(procPath(fd, ""))
	if err != nil {
		return "", err
	}
	if p == r.real {
		return "", nil
	}
	if rel, ok := strings.CutPrefix(p, r.real+"/"); ok && r.real != "/" {
		return rel, nil
	}
	if r.real == "/" {
		return strings.TrimPrefix(p, "/"), nil
	}
	return "", fmt.Errorf("resolved directory %s is not below the layer root %s", p, r.real)
}

func (r *inRoot) close() {
	if r.cacheFd >= 0 {
		unix.Close(r.cacheFd)
		r.cacheFd = -1
	}
	unix.Close(r.fd)
}

// invalidate forgets the cached parent. The descriptor is closed at the next lookup, so a
// caller still holding it may finish its operation.
func (r *inRoot) invalidate() { r.cacheOK = false }

// open resolves rel (a cleaned relative path, "" for the root) inside the root.
func (r *inRoot) open(rel string, flags uint64) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolveFlags}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(r.fd, rel, &how)
		if (err == unix.EAGAIN || err == unix.EINTR) && i < 32 {
			continue
		}
		if err == unix.ENOSYS {
			return -1, fmt.Errorf("openat2 (needed to keep layer paths inside the layer): %w", err)
		}
		return fd, err
	}
}

// dir returns a borrowed O_PATH descriptor of directory rel, valid until the next call of dir,
// and the directory's real path relative to the root (different from rel when rel goes through
// symlinks). With create, missing directories are made (0755, root-owned) and their real
// relative paths reported to created.
func (r *inRoot) dir(rel string, create bool, created func(string)) (int, string, error) {
	if r.cacheOK && r.cacheRel == rel {
		return r.cacheFd, r.cacheReal, nil
	}
	fd, err := r.openDir(rel, create, created)
	if err != nil {
		return -1, "", err
	}
	real := rel
	if rel != "" {
		if real, err = r.relOf(fd); err != nil {
			unix.Close(fd)
			return -1, "", err
		}
	}
	if r.cacheFd >= 0 {
		unix.Close(r.cacheFd)
	}
	r.cacheRel, r.cacheReal, r.cacheFd, r.cacheOK = rel, real, fd, true
	return fd, real, nil
}

// openDir is dir without the cache: the caller owns and closes the descriptor.
func (r *inRoot) openDir(rel string, create bool, created func(string)) (int, error) {
	fd, err := r.open(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || !create || err != unix.ENOENT || rel == "" {
		return fd, err
	}
	parent, base := splitRel(rel)
	pfd, err := r.openDir(parent, true, created)
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(pfd, base, 0o755)
	if err == nil && created != nil {
		if preal, rerr := r.relOf(pfd); rerr == nil {
			created(joinRel(preal, base))
		}
	}
	unix.Close(pfd)
	if err != nil && err != unix.EEXIST {
		return -1, err
	}
	fd, err = r.open(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT {
		// rel exists but does not resolve: a dangling symlink stands where a directory is needed.
		return -1, fmt.Errorf("%s is a dangling symlink: %w", rel, err)
	}
	return fd, err
}

// cleanName turns a tar entry name into a path relative to the root: "" is the root itself.
// Absolute names are taken relative to the root; names that climb above it are rejected.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", invalid("name %q contains a NUL byte", name)
	}
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", invalid("name %q is outside the layer root", name)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// splitRel splits a cleaned relative path into its parent ("" for the root) and last element.
func splitRel(rel string) (string, string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// procPath names name inside the directory dirfd through /proc, for the calls that have no
// *at form (l*xattr). dirfd is already resolved inside the root and name is a single element
// used without following, so the result cannot leave the root.
func procPath(dirfd int, name string) string {
	if name == "" {
		return fmt.Sprintf("/proc/self/fd/%d", dirfd)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name)
}

// removeAllAt removes name (a single element) from directory dirfd, recursively and without
// following symlinks. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOTDIR || err == unix.ELOOP {
			return unix.EPERM // the unlink failure was real
		}
		return err
	}
	if err := removeChildren(fd, nil); err != nil {
		unix.Close(fd)
		return err
	}
	unix.Close(fd)
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// removeChildren removes every entry of directory fd for which keep (if not nil) returns false.
func removeChildren(fd int, keep func(name string) bool) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if keep != nil && keep(n) {
			continue
		}
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists directory fd (not O_PATH) without closing it.
func readDirNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
	}
	return names, err
}
