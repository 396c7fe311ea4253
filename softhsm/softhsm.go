// Package softhsm makes SoftHSM2 environments: it finds libsofthsm2.so,
// writes a softhsm2.conf and a tokens/ directory, and initialises tokens
// through PKCS#11 (C_InitToken, C_InitPIN) — never by running softhsm2-util.
//
// SoftHSM2 reads SOFTHSM2_CONF once per process, at C_Initialize, so one
// process has one token directory: [Env.Activate] sets the variable and
// refuses to switch to another directory while the module is loaded in this
// process. One directory holds any number of tokens (SoftHSM adds a free
// slot after each C_InitToken).
package softhsm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/p11kms/p11kms/hsm"
)

// ModuleEnv is the environment variable that overrides the module search.
const ModuleEnv = "SOFTHSM2_MODULE"

// ModuleCandidates are the places libsofthsm2.so is looked for, in order:
// Debian/Ubuntu multiarch and /usr/lib/softhsm, RHEL/Fedora, Homebrew.
var ModuleCandidates = []string{
	"/usr/lib/" + multiarch() + "/softhsm/libsofthsm2.so",
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib64/softhsm/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
	"/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so",
}

func multiarch() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aarch64-linux-gnu"
	case "386":
		return "i386-linux-gnu"
	}
	return "x86_64-linux-gnu"
}

// ErrNotInstalled means libsofthsm2.so was not found.
var ErrNotInstalled = errors.New("softhsm: libsofthsm2.so not found; install SoftHSM2 (Debian/Ubuntu: ./scripts/install-deps, or apt-get install softhsm2) or set " + ModuleEnv)

// FindModule returns the path of libsofthsm2.so: $SOFTHSM2_MODULE if set
// (it must exist), else the first existing candidate.
func FindModule() (string, error) {
	if p := os.Getenv(ModuleEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("softhsm: %s=%s: %w", ModuleEnv, p, err)
		}
		return p, nil
	}
	for _, p := range ModuleCandidates {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Env is a SoftHSM2 environment in a directory: Dir/softhsm2.conf and
// Dir/tokens/.
type Env struct {
	Dir        string
	ConfPath   string
	TokensDir  string
	ModulePath string
}

// NewEnv creates (or reuses) a SoftHSM2 environment in dir.
func NewEnv(dir string) (*Env, error) {
	mod, err := FindModule()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: abs, ConfPath: filepath.Join(abs, "softhsm2.conf"), TokensDir: filepath.Join(abs, "tokens"), ModulePath: mod}
	if err := os.MkdirAll(e.TokensDir, 0o700); err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	if _, err := os.Stat(e.ConfPath); errors.Is(err, os.ErrNotExist) {
		conf := fmt.Sprintf("# SoftHSM2 configuration written by p11kms\n"+
			"directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", e.TokensDir)
		if err := os.WriteFile(e.ConfPath, []byte(conf), 0o600); err != nil {
			return nil, fmt.Errorf("softhsm: %w", err)
		}
	}
	return e, nil
}

var active struct {
	sync.Mutex
	conf string
}

// Activate points this process's SoftHSM2 at the environment
// (SOFTHSM2_CONF). It fails if the process already activated another one.
func (e *Env) Activate() error {
	active.Lock()
	defer active.Unlock()
	if active.conf != "" && active.conf != e.ConfPath {
		return fmt.Errorf("softhsm: this process already uses %s; SoftHSM2 reads its configuration once per process", active.conf)
	}
	if err := os.Setenv("SOFTHSM2_CONF", e.ConfPath); err != nil {
		return err
	}
	active.conf = e.ConfPath
	return nil
}

// CreateToken initialises a new token labelled label with the given SO and
// user PINs and returns its slot ID. It fails if the label exists.
func (e *Env) CreateToken(label, soPIN, userPIN string) (uint, error) {
	if err := e.Activate(); err != nil {
		return 0, err
	}
	lib, err := hsm.LoadLibrary(e.ModulePath)
	if err != nil {
		return 0, err
	}
	defer lib.Close()
	return lib.InitToken(label, soPIN, userPIN)
}

// Config returns an hsm.Config for the token labelled label with the PIN.
func (e *Env) Config(label, pin string) hsm.Config {
	return hsm.Config{ModulePath: e.ModulePath, TokenLabel: label, PIN: pin}
}

// RandomPIN returns a random 32-hex-digit PIN from the OS RNG.
func RandomPIN() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
