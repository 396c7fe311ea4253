package softhsmtest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

// tokenDirs lists the directories of the tokens of the process's
// environment whose name ends with serial (SoftHSM2: the UUID's last 16
// hex digits are the serial number), and how many token directories there
// are in all.
func tokenDirs(t *testing.T, tokensDir, serial string) (matching []string, all int) {
	t.Helper()
	entries, err := os.ReadDir(tokensDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		all++
		if strings.HasSuffix(strings.ReplaceAll(e.Name(), "-", ""), serial) {
			matching = append(matching, filepath.Join(tokensDir, e.Name()))
		}
	}
	return matching, all
}

// With no other token open, remove closes the token and deletes its
// directory, and the module still serves the tokens made after.
func TestTemporaryRemovesItsToken(t *testing.T) {
	tok, remove, err := softhsmtest.Temporary()
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Ping(context.Background()); err != nil {
		t.Fatalf("the temporary token does not answer: %v", err)
	}
	serial := tok.Serial()
	dirs, before := tokenDirs(t, tok.Env.TokensDir, serial)
	if len(dirs) != 1 {
		t.Fatalf("token %s (serial %s): %d directories, want 1: %v", tok.Label, serial, len(dirs), dirs)
	}
	if err := remove(); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := tok.Ping(context.Background()); err == nil {
		t.Error("the token still answers after remove")
	}
	dirs, after := tokenDirs(t, tok.Env.TokensDir, serial)
	if len(dirs) != 0 || after != before-1 {
		t.Fatalf("after remove: %d token directories (was %d), left of token %s: %v", after, before, tok.Label, dirs)
	}

	next := softhsmtest.New(t)
	if err := next.Ping(context.Background()); err != nil {
		t.Fatalf("a token made after remove does not answer: %v", err)
	}
	if _, err := hsm.Open(context.Background(), tok.Config); err == nil {
		t.Errorf("the removed token %s still opens", tok.Label)
	}
}

// While another token of the process uses the module, remove closes the
// token but keeps its files (deleting them would make SoftHSM2 fail every
// C_GetTokenInfo), and the other token keeps working.
func TestTemporaryKeepsFilesWhileModuleInUse(t *testing.T) {
	other := softhsmtest.New(t)
	tok, remove, err := softhsmtest.Temporary()
	if err != nil {
		t.Fatal(err)
	}
	serial := tok.Serial()
	if err := remove(); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := tok.Ping(context.Background()); err == nil {
		t.Error("the token still answers after remove")
	}
	if dirs, _ := tokenDirs(t, tok.Env.TokensDir, serial); len(dirs) != 1 {
		t.Errorf("token %s: %d directories after remove while the module is in use, want 1 (left for Main): %v", tok.Label, len(dirs), dirs)
	}
	if err := other.Ping(context.Background()); err != nil {
		t.Fatalf("the other token stopped answering: %v", err)
	}
	if next := softhsmtest.New(t); next.Ping(context.Background()) != nil {
		t.Fatal("a token made after remove does not answer")
	}
}
