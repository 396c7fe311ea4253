package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Update creates, changes and leaves a file as asked, mode 0600, with no
// temporary or lock file left; a change that fails writes nothing; a held
// lock is refused with ErrLocked and the file is untouched.
func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "conf.json")
	err := Update(p, func(old []byte, exists bool) ([]byte, error) {
		if exists || old != nil {
			t.Errorf("a missing file read as %q (exists %v)", old, exists)
		}
		return []byte("one"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Update(p, func(old []byte, exists bool) ([]byte, error) {
		if !exists || string(old) != "one" {
			t.Errorf("read %q (exists %v), want one", old, exists)
		}
		return []byte("two"), nil
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := Update(p, func([]byte, bool) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed change: %v", err)
	}
	if err := Update(p, func([]byte, bool) ([]byte, error) { return []byte("x"), ErrUnchanged }); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	if err := os.WriteFile(p+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Update(p, func([]byte, bool) ([]byte, error) { return []byte("three"), nil }); !errors.Is(err, ErrLocked) {
		t.Fatalf("with the lock held: %v", err)
	}
	os.Remove(p + ".lock")
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("file: %q %v, want two", b, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
