package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GC removes data left behind by items that no record names any more: big-data directories
// and tar-split files of unknown layers, image and container directories (graph root, run root
// and split store) of unknown images and containers, and temporary tar-split files.
func (s *Store) GC(ctx context.Context) error {
	ctx, done := s.opContext(ctx)
	defer done()
	end, err := s.begin(true)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	defer end()
	var errs []error
	sweep := func(dir string, keep func(name string, isDir bool) bool) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !os.IsNotExist(err) {
				errs = append(errs, err)
			}
			return
		}
		for _, e := range entries {
			if keep(e.Name(), e.IsDir()) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	layerDirs := []string{s.dir("layers")}
	imageDirs := []string{s.dir("images"), s.runDir("images")}
	if s.splitRoot != "" {
		layerDirs = append(layerDirs, s.splitDir("layers"))
		imageDirs = append(imageDirs, s.splitDir("images"))
	}
	meta := func(name string) bool { return strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".lock") }
	for _, dir := range layerDirs {
		sweep(dir, func(name string, isDir bool) bool {
			if meta(name) || name == "tmp" {
				return true
			}
			if isDir {
				_, ok := s.layers.t.byID[name]
				return ok
			}
			if id, ok := strings.CutSuffix(name, ".tar-split.gz"); ok {
				_, known := s.layers.t.byID[id]
				return known
			}
			return !strings.HasSuffix(name, ".tar-split.gz.tmp")
		})
	}
	for _, dir := range imageDirs {
		sweep(dir, func(name string, isDir bool) bool {
			_, ok := s.images.t.byID[name]
			return !isDir || ok
		})
	}
	for _, dir := range []string{s.dir("containers"), s.runDir("containers")} {
		sweep(dir, func(name string, isDir bool) bool {
			_, ok := s.containers.t.byID[name]
			return !isDir || ok
		})
	}
	if len(errs) > 0 {
		return fmt.Errorf("gc: %w", errors.Join(errs...))
	}
	return nil
}
