package softhsmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
)

// Temporary makes a new, empty token and opens it, for code that has no
// testing.TB — an example. It never panics or exits: a failure is returned.
// Call remove when done (defer it): it closes the token and deletes the
// token's files.
//
// SoftHSM2 fails every C_GetTokenInfo of a process once the directory of
// one of its loaded tokens is gone, so remove deletes the files only when
// no other open token of this process still uses the module (the usual
// case for an example, which runs after its package's tests). Otherwise it
// leaves them in the process's environment, which [Main] removes when the
// tests end. It does not guard against another goroutine opening a token
// while it runs.
func Temporary() (tok *Token, remove func() error, err error) {
	t, err := create()
	if err != nil {
		return nil, nil, fmt.Errorf("softhsmtest: %w", err)
	}
	opened, err := hsm.Open(context.Background(), t.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("softhsmtest: open token %s: %w", t.Label, err)
	}
	t.Token = opened
	serial := opened.Serial()
	remove = func() error {
		if err := opened.Close(); err != nil {
			return fmt.Errorf("softhsmtest: close token %s: %w", t.Label, err)
		}
		idle, err := moduleIdle(t.Env.ModulePath)
		if err != nil || !idle {
			return err
		}
		return removeTokenFiles(t.Env.TokensDir, t.Label, serial)
	}
	return t, remove, nil
}

// moduleIdle reports whether no code of this process has the PKCS#11 module
// at path initialised: a second C_Initialize in a process answers
// CKR_CRYPTOKI_ALREADY_INITIALIZED while the first is not finalised.
func moduleIdle(path string) (bool, error) {
	ctx := pkcs11.New(path)
	if ctx == nil {
		return false, fmt.Errorf("softhsmtest: cannot load PKCS#11 module %q", path)
	}
	defer ctx.Destroy()
	err := ctx.Initialize()
	if hsm.IsCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("softhsmtest: C_Initialize %s: %w", path, err)
	}
	if err := ctx.Finalize(); err != nil {
		return false, fmt.Errorf("softhsmtest: C_Finalize %s: %w", path, err)
	}
	return true, nil
}

// removeTokenFiles deletes the directory of the token with serial number
// serial. SoftHSM2 names a token's directory by a UUID whose last 16 hex
// digits are the token's serial number.
func removeTokenFiles(tokensDir, label, serial string) error {
	entries, err := os.ReadDir(tokensDir)
	if err != nil {
		return fmt.Errorf("softhsmtest: remove token %s: %w", label, err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(strings.ReplaceAll(e.Name(), "-", ""), serial) {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 1 {
		return fmt.Errorf("softhsmtest: remove token %s: %d directories in %s end with its serial %s, want 1", label, len(dirs), tokensDir, serial)
	}
	if err := os.RemoveAll(filepath.Join(tokensDir, dirs[0])); err != nil {
		return fmt.Errorf("softhsmtest: remove token %s: %w", label, err)
	}
	return nil
}
