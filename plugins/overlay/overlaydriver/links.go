package overlaydriver

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pluggable-storage/storage/errdefs"
)

// shortIDLen is the length of the names in l/.
const shortIDLen = 26

// newShortID returns a fresh l/ name: 26 base32 characters, as the established driver makes.
func newShortID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base32.StdEncoding.EncodeToString(b)[:shortIDLen]
}

// linkTarget is what l/<short> of layer id points at.
func linkTarget(id string) string { return filepath.Join("..", id, "diff") }

// ensureLink returns layer id's short name, repairing the link file and the l/ symlink if a user
// deleted either. A missing link file is rebuilt from an l/ entry that still points at the
// layer (so children's lower files stay valid), or from a new name. Callers hold id's lock.
func (d *Driver) ensureLink(id string) (string, error) {
	dir := d.dir(id)
	data, err := os.ReadFile(filepath.Join(dir, linkFile))
	short := strings.TrimSpace(string(data))
	switch {
	case err == nil && short != "":
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if short, err = d.findLink(id); err != nil {
			return "", err
		}
		if short == "" {
			short = newShortID()
		}
		if err := writeFileSync(filepath.Join(dir, linkFile), []byte(short), 0o644); err != nil {
			return "", fmt.Errorf("recreate link file of layer %s: %w", id, err)
		}
		logger().Warn("recreated missing link file", "layer", id, "link", short)
	default:
		return "", fmt.Errorf("read link file of layer %s: %w", id, err)
	}
	lp := filepath.Join(d.home, linkDir, short)
	if target, err := os.Readlink(lp); err == nil && target == linkTarget(id) {
		return short, nil
	}
	d.linksMu.Lock()
	defer d.linksMu.Unlock()
	_ = os.Remove(lp)
	if err := os.Symlink(linkTarget(id), lp); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("recreate short link of layer %s: %w", id, err)
	}
	logger().Warn("recreated missing short link", "layer", id, "link", short)
	return short, nil
}

// findLink returns the name of an l/ entry pointing at layer id, or "".
func (d *Driver) findLink(id string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(d.home, linkDir))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", linkDir, err)
	}
	want := linkTarget(id)
	for _, e := range entries {
		if t, err := os.Readlink(filepath.Join(d.home, linkDir, e.Name())); err == nil && t == want {
			return e.Name(), nil
		}
	}
	return "", nil
}

// recreateLinks restores the l/ symlink of every layer whose link file names one that is
// missing. It is how a lower chain whose links a user deleted is repaired.
func (d *Driver) recreateLinks() error {
	entries, err := os.ReadDir(d.home)
	if err != nil {
		return err
	}
	d.linksMu.Lock()
	defer d.linksMu.Unlock()
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || reservedName(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(d.home, e.Name(), linkFile))
		if err != nil {
			continue // a layer without a link file gets one when it is next used itself
		}
		short := strings.TrimSpace(string(data))
		lp := filepath.Join(d.home, linkDir, short)
		if t, err := os.Readlink(lp); err == nil && t == linkTarget(e.Name()) {
			continue
		}
		_ = os.Remove(lp)
		if err := os.Symlink(linkTarget(e.Name()), lp); err != nil && !errors.Is(err, fs.ErrExist) {
			errs = append(errs, err)
			continue
		}
		logger().Warn("recreated missing short link", "layer", e.Name(), "link", short)
	}
	return errors.Join(errs...)
}

// lowerChain returns layer id's lower entries ("l/<short>", nearest first) from its lower file;
// nil for a base layer.
func (d *Driver) lowerChain(id string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(d.dir(id), lowerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lower file of layer %s: %w", id, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, ":"), nil
}

// resolvedLowers returns layer id's lower entries after making sure each resolves to a
// directory, rebuilding l/ once if one does not. An entry no layer's link file names any more is
// ErrCorrupt.
func (d *Driver) resolvedLowers(id string) ([]string, error) {
	lowers, err := d.lowerChain(id)
	if err != nil {
		return nil, err
	}
	if err := d.checkLowers(lowers); err == nil {
		return lowers, nil
	}
	if err := d.recreateLinks(); err != nil {
		return nil, fmt.Errorf("repair short links for layer %s: %w", id, err)
	}
	if err := d.checkLowers(lowers); err != nil {
		return nil, fmt.Errorf("layer %s: %w", id, err)
	}
	return lowers, nil
}

func (d *Driver) checkLowers(lowers []string) error {
	for _, l := range lowers {
		fi, err := os.Stat(filepath.Join(d.home, l))
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("lower %s does not resolve to a layer: %w", l, errdefs.ErrCorrupt)
		}
	}
	return nil
}

// absLowers turns lower entries into absolute paths of the lower layers' diff directories.
func (d *Driver) absLowers(lowers []string) ([]string, error) {
	out := make([]string, 0, len(lowers))
	for _, l := range lowers {
		p, err := filepath.EvalSymlinks(filepath.Join(d.home, l))
		if err != nil {
			return nil, fmt.Errorf("resolve lower %s: %w", l, errdefs.ErrCorrupt)
		}
		out = append(out, p)
	}
	return out, nil
}

// writeFileSync writes a small file and fsyncs it, so it survives a crash once Create returns.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
