package btrfsdriver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Size quotas are qgroup limits on a layer's subvolume (its referenced bytes). The size given at
// Create is also written to Home/quotas/<id> (decimal bytes), which is how a child inherits its
// parent's size and how Status and Metadata report it. The record is written after the limit is
// set and removed after the subvolume is deleted; a crash in between leaves a record without a
// layer, which Remove of that ID deletes.

// quotaEnabled reports whether this home has used quotas (min_space given, or a recorded size).
func (st *state) quotaEnabled() bool {
	if st.opts.minSpace > 0 {
		return true
	}
	_, err := os.Stat(st.quotasDir())
	return err == nil
}

// setQuota enables quota accounting if needed, limits subvolume p to size bytes and records it.
func (st *state) setQuota(id, p string, size uint64) error {
	if err := quotaEnable(st.home); err != nil {
		return err
	}
	if err := qgroupLimit(p, size); err != nil {
		return err
	}
	if err := os.MkdirAll(st.quotasDir(), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(st.quotasDir(), id), []byte(strconv.FormatUint(size, 10)), 0o600)
}

// readQuota returns the recorded size of layer id; ok is false when it has none.
func (st *state) readQuota(id string) (size uint64, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(st.quotasDir(), id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	size, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("quota record of layer %s: %q: %w", id, data, err)
	}
	return size, true, nil
}

func (st *state) removeQuota(id string) error {
	err := os.Remove(filepath.Join(st.quotasDir(), id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
