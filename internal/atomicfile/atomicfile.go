// Package atomicfile changes a small file that several processes may
// write — a configuration holding sealed secrets — under a lock file, and
// replaces it atomically: a reader sees the old file or the new one, never
// a part, and a crash leaves the old one.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrLocked is wrapped by Update's error when another writer holds the
// lock (path + ".lock").
var ErrLocked = errors.New("locked by another writer")

// ErrUnchanged, returned by a change function, makes Update write nothing
// and return nil.
var ErrUnchanged = errors.New("atomicfile: unchanged")

// Update changes path under the lock file path + ".lock" (created
// exclusively, removed after): it reads the file (old is nil and exists
// false when there is none), calls change, and writes what change returns
// to a temporary file in the same directory with mode 0600, syncs it,
// renames it over path and syncs the directory. An error from change (other
// than ErrUnchanged) is returned as it is and nothing is written.
func Update(path string, change func(old []byte, exists bool) ([]byte, error)) error {
	lock := path + ".lock"
	lf, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s is %w (remove %s if stale)", path, ErrLocked, lock)
		}
		return err
	}
	lf.Close()
	defer os.Remove(lock)
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	b, err := change(old, exists)
	if errors.Is(err, ErrUnchanged) {
		return nil
	}
	if err != nil {
		return err
	}
	return replace(path, b)
}

// replace writes b to a temporary file beside path and renames it over
// path.
func replace(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename is durable once the directory is
		d.Close()
	}
	return nil
}
