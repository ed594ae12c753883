package overlaydriver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pluggable-storage/storage/errdefs"
	"github.com/pluggable-storage/storage/pluginapi/driverkit"
)

// features are what Init found out about the kernel and the backing file system.
type features struct {
	backingFS  string
	dType      bool
	nativeDiff bool   // the upper directory alone is a faithful diff
	nativeWhy  string // why not, when nativeDiff is false
	metacopy   bool
	volatile   bool
}

// cachedFeature returns the cached result of the probe named name from runHome, or runs probe
// and caches its result as the file <runHome>/<name>-true or -false (holding the reason for
// false). The cache lives in the run root, so it is redone after a reboot, when the kernel may
// have changed; an unwritable cache only costs a re-probe next time.
func cachedFeature(runHome, name string, probe func() error) (bool, string) {
	if runHome != "" {
		for _, v := range []bool{true, false} {
			data, err := os.ReadFile(filepath.Join(runHome, fmt.Sprintf("%s-%t", name, v)))
			if err == nil {
				return v, string(data)
			}
		}
	}
	err := probe()
	ok, why := err == nil, ""
	if err != nil {
		why = err.Error()
	}
	if runHome != "" {
		_ = os.WriteFile(filepath.Join(runHome, fmt.Sprintf("%s-%t", name, ok)), []byte(why), 0o600)
	}
	return ok, why
}

// featureName renders a probe name with the mount options it was made with, as the established
// driver does: "native-diff()" for none.
func featureName(probe, mountOpts string) string {
	return probe + "(" + strings.ReplaceAll(mountOpts, "/", "_") + ")"
}

// probeDir makes a scratch directory on the home's file system with the given subdirectories,
// and returns it with a function that unmounts td/merged and removes it.
func probeDir(home string, subdirs ...string) (string, func(), error) {
	td, err := os.MkdirTemp(home, scratchName(probePrefix, "probe"))
	if err != nil {
		return "", nil, err
	}
	cleanup := func() {
		_ = unmountAll(filepath.Join(td, "merged"))
		_ = os.RemoveAll(td)
	}
	for _, d := range subdirs {
		if err := os.MkdirAll(filepath.Join(td, d), 0o755); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return td, cleanup, nil
}

// probeOverlay checks that the kernel can mount an overlay with an upper directory on the home's
// file system (it cannot on top of another overlay, for instance).
func probeOverlay(home string) error {
	data, err := os.ReadFile("/proc/filesystems")
	if err == nil && !strings.Contains(string(data), "\toverlay\n") {
		return errors.New("overlay is not in /proc/filesystems")
	}
	td, cleanup, err := probeDir(home, "lower", "upper", "work", "merged")
	if err != nil {
		return err
	}
	defer cleanup()
	return mountKernel(overlaySpec{dir: td, lowers: []string{"lower"}, upper: "upper", work: "work", target: "merged"})
}

// probeNativeDiff is the established driver's check that an upper directory is a faithful diff:
// an opaque directory must not be copied up as opaque (kernels before 4.8), and a renamed
// directory must not be recorded as a redirect (redirect_dir), which a tar of the upper cannot
// express.
func probeNativeDiff(home string, mountOpts []string) error {
	td, cleanup, err := probeDir(home, "l1/d", "l1/d1", "l2/d", "l3", "work", "merged")
	if err != nil {
		return err
	}
	defer cleanup()
	if err := unix.Lsetxattr(filepath.Join(td, "l2", "d"), overlayOpaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("set opaque xattr: %w", err)
	}
	s := overlaySpec{dir: td, lowers: []string{"l2", "l1"}, upper: "l3", work: "work", target: "merged", opts: mountOpts}
	if err := mountKernel(s); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(td, "merged", "d", "f"), nil, 0o644); err != nil {
		return fmt.Errorf("copy up: %w", err)
	}
	if v, _ := getxattr(filepath.Join(td, "l3", "d"), overlayOpaqueXattr); string(v) == "y" {
		return errors.New("opaque flag erroneously copied up, consider update to kernel 4.8 or later to fix")
	}
	if err := os.Rename(filepath.Join(td, "merged", "d1"), filepath.Join(td, "merged", "d2")); err != nil {
		if errors.Is(err, unix.EXDEV) {
			return nil // redirect_dir is off: renames of lower directories are refused
		}
		return fmt.Errorf("rename directory in merged view: %w", err)
	}
	if v, _ := getxattr(filepath.Join(td, "l3", "d2"), overlayRedirectXattr); string(v) == "d1" {
		return errors.New("kernel has CONFIG_OVERLAY_FS_REDIRECT_DIR enabled")
	}
	return nil
}

// probeMetacopy reports (as a nil error) whether a chmod through a mount with mountOpts copies up
// only metadata; such upper files carry no data, so the upper directory is no diff.
func probeMetacopy(home string, mountOpts []string) error {
	td, cleanup, err := probeDir(home, "l1", "l2", "work", "merged")
	if err != nil {
		return err
	}
	defer cleanup()
	if err := os.WriteFile(filepath.Join(td, "l1", "f"), []byte("data"), 0o644); err != nil {
		return err
	}
	s := overlaySpec{dir: td, lowers: []string{"l1"}, upper: "l2", work: "work", target: "merged", opts: mountOpts}
	if err := mountKernel(s); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(td, "merged", "f"), 0o600); err != nil {
		return err
	}
	if _, err := getxattr(filepath.Join(td, "l2", "f"), overlayMetacopyXattr); err != nil {
		return errors.New("metadata-only copy-up not in use")
	}
	return nil
}

// probeVolatile checks that the kernel accepts the "volatile" mount option (5.10 and later).
func probeVolatile(home string) error {
	td, cleanup, err := probeDir(home, "lower", "upper", "work", "merged")
	if err != nil {
		return err
	}
	defer cleanup()
	return mountKernel(overlaySpec{dir: td, lowers: []string{"lower"}, upper: "upper", work: "work", target: "merged", opts: []string{"volatile"}})
}

func getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// supportsDType reports whether readdir on dir's file system fills in d_type. Go's os.ReadDir
// falls back to lstat for DT_UNKNOWN, so this reads the raw dirents.
func supportsDType(dir string) (bool, error) {
	td, err := os.MkdirTemp(dir, scratchName(probePrefix, "dtype"))
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(td)
	if err := os.WriteFile(filepath.Join(td, "f"), nil, 0o600); err != nil {
		return false, err
	}
	fd, err := unix.Open(td, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return false, err
		}
		if n <= 0 {
			return false, errors.New("probe file not found by readdir")
		}
		// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
		for off := 0; off+19 < n; {
			reclen := int(buf[off+16]) | int(buf[off+17])<<8
			typ := buf[off+18]
			name := buf[off+19 : off+reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			if string(name) == "f" {
				return typ != unix.DT_UNKNOWN, nil
			}
			if reclen == 0 {
				break
			}
			off += reclen
		}
	}
}

// probeFeatures checks the home's file system and the kernel. A missing overlay (without a mount
// program) or missing d_type is ErrNotSupported: the store should pick another driver.
func probeFeatures(home, runHome string, c config) (features, error) {
	var f features
	var err error
	if f.backingFS, err = driverkit.BackingFS(home); err != nil {
		return f, fmt.Errorf("statfs %s: %w", home, err)
	}
	if f.dType, err = supportsDType(home); err != nil {
		return f, fmt.Errorf("check d_type support in %s: %w", home, err)
	}
	if !f.dType {
		return f, fmt.Errorf("overlay needs a backing file system with d_type support; %s on %s has none: %w", home, f.backingFS, errdefs.ErrNotSupported)
	}
	if c.mountProgram != "" {
		// A FUSE overlay keeps deletions in its upper directory in formats of its own choosing
		// (".wh." files, ".wh..wh..opq" markers) that a tar of the upper would carry as data:
		// diffs go through its mounts.
		f.nativeWhy = "mount program in use"
		return f, nil
	}
	if ok, why := cachedFeature(runHome, "overlay", func() error { return probeOverlay(home) }); !ok {
		return f, fmt.Errorf("kernel overlay unusable on %s (%s): %s: %w", home, f.backingFS, why, errdefs.ErrNotSupported)
	}
	opts := driverkit.SplitList(c.mountOpts)
	f.metacopy, _ = cachedFeature(runHome, featureName("metacopy", c.mountOpts), func() error { return probeMetacopy(home, opts) })
	f.nativeDiff, f.nativeWhy = cachedFeature(runHome, featureName("native-diff", c.mountOpts), func() error { return probeNativeDiff(home, opts) })
	if f.metacopy {
		f.nativeDiff, f.nativeWhy = false, "metacopy is in use"
	}
	f.volatile, _ = cachedFeature(runHome, "volatile", func() error { return probeVolatile(home) })
	return f, nil
}
