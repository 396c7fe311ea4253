// Package softhsmtest gives tests a fresh SoftHSM2 token each: one token
// directory per test process (on /dev/shm where it exists, where SoftHSM
// writes objects ~30× faster than on disk), one new token per call.
// If SoftHSM2 is not installed the test fails, it never skips.
package softhsmtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/softhsm"
)

var (
	once    sync.Once
	env     *softhsm.Env
	envErr  error
	counter atomic.Int64
)

// Env returns the process's SoftHSM2 environment, creating it on first use.
func Env(tb testing.TB) *softhsm.Env {
	tb.Helper()
	e, err := processEnv()
	if err != nil {
		tb.Fatalf("softhsmtest: %v", err)
	}
	return e
}

// processEnv returns the process's SoftHSM2 environment, creating and
// activating it on first use.
func processEnv() (*softhsm.Env, error) {
	once.Do(func() {
		base := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			base = "/dev/shm"
		}
		dir, err := os.MkdirTemp(base, "p11kms-test-")
		if err != nil {
			envErr = err
			return
		}
		env, envErr = softhsm.NewEnv(dir)
		if envErr == nil {
			envErr = env.Activate()
		}
	})
	if envErr != nil {
		return nil, fmt.Errorf("SoftHSM2 environment: %w", envErr)
	}
	return env, nil
}

// Main runs the tests and removes the process's token directory after.
// Use it as: func TestMain(m *testing.M) { softhsmtest.Main(m) }.
//
// It also gives the run a TMPDIR of its own (removed after), which child
// processes inherit: the importer keeps a host-wide lock file per token
// label hash in TMPDIR, and tests make thousands of tokens, whose lock
// files would otherwise stay in /tmp for ever.
func Main(m *testing.M) {
	cleanup := PrivateTempDir()
	code := m.Run()
	if env != nil {
		os.RemoveAll(env.Dir)
	}
	cleanup()
	os.Exit(code)
}

// privateTempDirVar marks a TMPDIR made by PrivateTempDir, so a test
// binary re-run as a child process keeps its parent's (the locks in it are
// shared between the two).
const privateTempDirVar = "P11KMS_TEST_TMPDIR"

// PrivateTempDir points TMPDIR at a new directory for this process and its
// children, unless a parent test process already did, and returns what
// removes it (a no-op in a child).
func PrivateTempDir() (cleanup func()) {
	if os.Getenv(privateTempDirVar) != "" {
		return func() {}
	}
	dir, err := os.MkdirTemp("", "p11kms-tmp-")
	if err != nil {
		return func() {} // keep the system's TMPDIR; only tidiness is lost
	}
	old, had := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dir)
	os.Setenv(privateTempDirVar, dir)
	return func() {
		if had {
			os.Setenv("TMPDIR", old)
		} else {
			os.Unsetenv("TMPDIR")
		}
		os.Unsetenv(privateTempDirVar)
		os.RemoveAll(dir)
	}
}

// Token is a fresh token and how to reach it again.
type Token struct {
	*hsm.Token
	Label   string
	PIN     string
	SOPIN   string
	Env     *softhsm.Env
	Config  hsm.Config
	Slot    uint
	created bool
}

// New makes a new, empty token, opens it (closed at test end) and returns it.
func New(tb testing.TB) *Token {
	tb.Helper()
	t := Create(tb)
	tok, err := hsm.Open(context.Background(), t.Config)
	if err != nil {
		tb.Fatalf("softhsmtest: open token %s: %v", t.Label, err)
	}
	tb.Cleanup(func() { tok.Close() })
	t.Token = tok
	return t
}

// Create makes a new token without opening it.
func Create(tb testing.TB) *Token {
	tb.Helper()
	t, err := create()
	if err != nil {
		tb.Fatalf("softhsmtest: %v", err)
	}
	return t
}

// create makes a new token with a unique label and random PINs in the
// process's environment.
func create() (*Token, error) {
	e, err := processEnv()
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("t%d-%d", os.Getpid()%100000, counter.Add(1))
	pin, so := softhsm.RandomPIN(), softhsm.RandomPIN()
	slot, err := e.CreateToken(label, so, pin)
	if err != nil {
		return nil, fmt.Errorf("create token %s: %w", label, err)
	}
	return &Token{Label: label, PIN: pin, SOPIN: so, Env: e, Config: e.Config(label, pin), Slot: slot, created: true}, nil
}
