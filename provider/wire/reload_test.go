package wire_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/p11kms/p11kms/provider/wire"
)

// Reload replaces the whole set from the file, or, when the file is
// malformed or gone, keeps the last good set and says why.
func TestReloadKeepsTheLastGoodSet(t *testing.T) {
	file := filepath.Join(t.TempDir(), "access-keys.json")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"AccessKeys":[{"AccessKeyId":"a","AccessKeySecret":"sa","Policy":{"Actions":["*"],"Keys":["*"]}}]}`)
	ak, err := wire.LoadAccessKeys(file)
	if err != nil {
		t.Fatal(err)
	}
	write(`{"AccessKeys":[`)
	if _, err := ak.Reload(); err == nil {
		t.Fatal("a malformed file reloaded")
	}
	if _, ok := ak.Lookup("a"); !ok {
		t.Fatal("the last good set was dropped")
	}
	os.Remove(file)
	if _, err := ak.Reload(); err == nil {
		t.Fatal("a missing file reloaded")
	}
	write(`{"AccessKeys":[{"AccessKeyId":"b","AccessKeySecret":"sb","Policy":{"Actions":["*"],"Keys":["*"]}}]}`)
	if n, err := ak.Reload(); err != nil || n != 1 {
		t.Fatalf("Reload: %d %v", n, err)
	}
	if _, ok := ak.Lookup("a"); ok {
		t.Fatal("a deleted key survived the reload")
	}
	if _, ok := ak.Lookup("b"); !ok {
		t.Fatal("a new key is missing after the reload")
	}
	if _, err := wire.NewAccessKeys().Reload(); err == nil {
		t.Fatal("an in-memory set reloaded")
	}
}
