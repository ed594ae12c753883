package overlaydriver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
)

// maxLowers is overlayfs's stacking limit (OVL_MAX_STACK), and the established driver's limit on
// a layer's lower chain.
const maxLowers = 500

const (
	fsopenCloexec        = 0x1 // FSOPEN_CLOEXEC
	fsmountCloexec       = 0x1 // FSMOUNT_CLOEXEC
	moveMountFEmptyPath  = 0x4 // MOVE_MOUNT_F_EMPTY_PATH
	overlayOpaqueXattr   = "trusted.overlay.opaque"
	overlayRedirectXattr = "trusted.overlay.redirect"
	overlayMetacopyXattr = "trusted.overlay.metacopy"
)

// overlaySpec describes one overlay mount. Directory paths are relative to dir (the driver home):
// they are resolved from a thread whose working directory is dir, which keeps both the mount data
// and the mountinfo line short however deep the chain.
type overlaySpec struct {
	dir    string   // working directory for resolving the paths below
	lowers []string // lower directories, nearest first; at least one
	upper  string   // upper directory; "" for a lower-only (read-only) mount
	work   string   // work directory; set iff upper is
	target string   // mount point
	opts   []string // mount options: generic flags (ro, nodev, ...) and overlay options
	label  string   // SELinux context for the mount; "" for none
}

// mountAttrs are the generic mount options that are mount attributes, not file system options.
var mountAttrs = map[string]uint64{
	"ro":          unix.MOUNT_ATTR_RDONLY,
	"nosuid":      unix.MOUNT_ATTR_NOSUID,
	"nodev":       unix.MOUNT_ATTR_NODEV,
	"noexec":      unix.MOUNT_ATTR_NOEXEC,
	"noatime":     unix.MOUNT_ATTR_NOATIME,
	"nodiratime":  unix.MOUNT_ATTR_NODIRATIME,
	"strictatime": unix.MOUNT_ATTR_STRICTATIME,
	"relatime":    unix.MOUNT_ATTR_RELATIME,
}

// legacyFlags maps the same options to mount(2) flags.
var legacyFlags = map[string]uintptr{
	"ro":          unix.MS_RDONLY,
	"nosuid":      unix.MS_NOSUID,
	"nodev":       unix.MS_NODEV,
	"noexec":      unix.MS_NOEXEC,
	"noatime":     unix.MS_NOATIME,
	"nodiratime":  unix.MS_NODIRATIME,
	"strictatime": unix.MS_STRICTATIME,
	"relatime":    unix.MS_RELATIME,
}

// inDir runs fn on a dedicated OS thread whose working directory is dir. The thread unshares its
// file system context first, so the chdir does not affect the rest of the process; the thread
// is discarded afterwards (the goroutine exits while locked).
func inDir(dir string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare file system context: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// mountKernel mounts s with the kernel's overlayfs. It uses the new mount API (each lower is a
// separate fsconfig call, so there is no page limit) and falls back to mount(2) with relative
// paths, whose data must fit in a page, on kernels without it.
func mountKernel(s overlaySpec) error {
	err := inDir(s.dir, func() error { return fsmountOverlay(s) })
	if errors.Is(err, unix.ENOSYS) {
		err = inDir(s.dir, func() error { return legacyMountOverlay(s) })
	}
	if err != nil {
		return fmt.Errorf("mount overlay on %s: %w", s.target, err)
	}
	return nil
}

func fsmountOverlay(s overlaySpec) error {
	fd, err := unix.Fsopen("overlay", fsopenCloexec)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	set := func(key, val string) error {
		if err := unix.FsconfigSetString(fd, key, val); err != nil {
			return fmt.Errorf("overlay option %s=%s: %w%s", key, val, err, fsLog(fd))
		}
		return nil
	}
	if err := set("source", "overlay"); err != nil {
		return err
	}
	for _, l := range s.lowers {
		if err := set("lowerdir+", l); err != nil {
			return err
		}
	}
	if s.upper != "" {
		if err := set("upperdir", s.upper); err != nil {
			return err
		}
		if err := set("workdir", s.work); err != nil {
			return err
		}
	}
	var attrs uint64
	for _, o := range s.opts {
		if a, ok := mountAttrs[o]; ok {
			attrs |= a
			continue
		}
		if o == "rw" || o == "" {
			continue
		}
		k, v, hasValue := strings.Cut(o, "=")
		if !hasValue {
			if err := unix.FsconfigSetFlag(fd, k); err != nil {
				return fmt.Errorf("overlay option %s: %w%s", k, err, fsLog(fd))
			}
			continue
		}
		if err := set(k, v); err != nil {
			return err
		}
	}
	if s.label != "" {
		if err := set("context", s.label); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fd))
	}
	mfd, err := unix.Fsmount(fd, fsmountCloexec, int(attrs))
	if err != nil {
		return fmt.Errorf("fsmount: %w%s", err, fsLog(fd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, s.target, moveMountFEmptyPath); err != nil {
		return fmt.Errorf("move_mount to %s: %w", s.target, err)
	}
	return nil
}

// fsLog drains the file system context's message log, which is where overlayfs explains why a
// parameter was refused.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for i := 0; i < 16; i++ {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

func legacyMountOverlay(s overlaySpec) error {
	var flags uintptr
	data := []string{"lowerdir=" + strings.Join(s.lowers, ":")}
	if s.upper != "" {
		data = append(data, "upperdir="+s.upper, "workdir="+s.work)
	}
	for _, o := range s.opts {
		if f, ok := legacyFlags[o]; ok {
			flags |= f
		} else if o != "rw" && o != "" {
			data = append(data, o)
		}
	}
	if s.label != "" {
		data = append(data, fmt.Sprintf("context=%q", s.label))
	}
	joined := strings.Join(data, ",")
	if len(joined) >= os.Getpagesize() {
		return fmt.Errorf("mount data of %d bytes for %d lowers exceeds the page size and this kernel lacks the new mount API: %w",
			len(joined), len(s.lowers), errdefs.ErrNotSupported)
	}
	return unix.Mount("overlay", s.target, "overlay", flags, joined)
}

// mountProgram mounts s with a FUSE overlay program (fuse-overlayfs), run with the home as its
// working directory so the relative paths resolve. The program daemonises; its mount outlives
// this process like a kernel mount.
func mountProgram(program string, s overlaySpec) error {
	opts := []string{"lowerdir=" + strings.Join(s.lowers, ":")}
	if s.upper != "" {
		opts = append(opts, "upperdir="+s.upper, "workdir="+s.work)
	}
	for _, o := range s.opts {
		if o != "" {
			opts = append(opts, o)
		}
	}
	if s.label != "" {
		opts = append(opts, fmt.Sprintf("context=%q", s.label))
	}
	cmd := exec.Command(program, "-o", strings.Join(opts, ","), s.target)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mount %s with %s: %w: %s", s.target, program, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// mountAt returns the topmost mount whose mount point is exactly path, or nil.
func mountAt(path string) (*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) { return m.Mountpoint != path, false })
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	return ms[len(ms)-1], nil
}

// isOverlayMount reports whether m is a kernel or FUSE overlay.
func isOverlayMount(m *mountinfo.Info) bool {
	return m != nil && (m.FSType == "overlay" || strings.HasPrefix(m.FSType, "fuse"))
}

// unmountAll unmounts every mount stacked at path. A mount that is busy is detached lazily, as
// the established driver does. A path that is not a mount point is fine.
func unmountAll(path string) error {
	for i := 0; i < 64; i++ {
		m, err := mountAt(path)
		if err != nil {
			return err
		}
		if m == nil {
			return nil
		}
		err = unix.Unmount(path, 0)
		if errors.Is(err, unix.EBUSY) {
			hclog.Default().Warn("mount busy, detaching it lazily", "driver", Name, "path", path)
			err = unix.Unmount(path, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts: %w", path, errdefs.ErrInUse)
}
