package softhsm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/softhsm"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

func TestFindModule(t *testing.T) {
	p, err := softhsm.FindModule()
	if err != nil {
		t.Fatalf("SoftHSM2 must be installed for the tests (./scripts/install-deps): %v", err)
	}
	t.Setenv(softhsm.ModuleEnv, p)
	if q, err := softhsm.FindModule(); err != nil || q != p {
		t.Fatalf("override: %s %v", q, err)
	}
	t.Setenv(softhsm.ModuleEnv, "/nonexistent/libsofthsm2.so")
	if _, err := softhsm.FindModule(); err == nil {
		t.Fatal("a missing override was accepted")
	}
}

func TestManyTokensInOneDirectory(t *testing.T) {
	a, b, c := softhsmtest.New(t), softhsmtest.New(t), softhsmtest.New(t)
	if a.Env.Dir != b.Env.Dir || b.Env.Dir != c.Env.Dir {
		t.Fatal("tokens in different directories")
	}
	if a.Token.Label() == b.Token.Label() || a.Serial() == b.Serial() {
		t.Fatal("tokens not distinct")
	}
	if _, err := a.Env.CreateToken(a.Label, "so", "user"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate label: %v", err)
	}
	conf, err := os.ReadFile(a.Env.ConfPath)
	if err != nil || !strings.Contains(string(conf), "directories.tokendir = "+a.Env.TokensDir) {
		t.Fatalf("conf: %s %v", conf, err)
	}
	// Another directory in the same process is refused: SoftHSM reads its configuration once.
	other, err := softhsm.NewEnv(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Activate(); err == nil {
		t.Fatal("a second SoftHSM2 directory was activated in one process")
	}
}

func TestResolveToken(t *testing.T) {
	tok := softhsmtest.Create(t)
	home := t.TempDir()
	// A URI with module and PIN needs no home.
	cfg, err := softhsm.ResolveToken("pkcs11:token="+tok.Label+"?module-path="+tok.Env.ModulePath+"&pin-value="+tok.PIN, home)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hsm.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	// A label-only URI needs an initialised home, and says so.
	if _, err := softhsm.ResolveToken("pkcs11:token=kms", filepath.Join(home, "none")); err == nil || !strings.Contains(err.Error(), "p11kms init") {
		t.Fatalf("missing home: %v", err)
	}
}
