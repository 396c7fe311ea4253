package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// One home per test process: SoftHSM2 reads its configuration once.
var testHome string

func TestMain(m *testing.M) {
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "p11kms-cli-")
	if err != nil {
		panic(err)
	}
	testHome = filepath.Join(dir, "home")
	// The first init, whose output TestInitAndTokenInfo checks.
	firstInitOut, firstInitErr, firstInitCode = cliRun("init")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	firstInitOut, firstInitErr string
	firstInitCode              int
)

// cli runs the CLI in-process and returns stdout, stderr and the status.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return cliRun(args...)
}

func cliRun(args ...string) (string, string, int) {
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	outC, errC := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(ro); outC <- string(b) }()
	go func() { b, _ := io.ReadAll(re); errC <- string(b) }()
	code := run(append([]string{"--home", testHome}, args...))
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	return <-outC, <-errC, code
}

func TestInitAndTokenInfo(t *testing.T) {
	out, errOut, code := firstInitOut, firstInitErr, firstInitCode
	if code != 0 {
		t.Fatalf("init: %d %s", code, errOut)
	}
	if !strings.Contains(out, "created home") || !strings.Contains(out, `created token    "kms"`) {
		t.Fatalf("init output:\n%s", out)
	}
	st, err := os.Stat(filepath.Join(testHome, "user.pin"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("user.pin: %v %v", st, err)
	}
	pin, _ := os.ReadFile(filepath.Join(testHome, "user.pin"))
	if strings.Contains(out, strings.TrimSpace(string(pin))) {
		t.Fatal("init printed the PIN")
	}
	if !strings.Contains(out, "AccessKeySecret") {
		t.Fatalf("init did not print the admin access key:\n%s", out)
	}
	// Idempotent.
	out, _, code = cli(t, "init")
	if code != 0 || !strings.Contains(out, "(exists)") {
		t.Fatalf("second init: %d\n%s", code, out)
	}
	if _, errOut, code := cli(t, "init", "--token-label", "device"); code != 0 {
		t.Fatalf("init device: %s", errOut)
	}
	out, errOut, code = cli(t, "token", "info")
	if code != 0 || !strings.Contains(out, "token label   kms") || !strings.Contains(out, "CKM_ECDH1_DERIVE           present") {
		t.Fatalf("token info: %d %s\n%s", code, errOut, out)
	}
	out, errOut, code = cli(t, "token", "info", "--token", "pkcs11:token=device")
	if code != 0 || !strings.Contains(out, "token label   device") {
		t.Fatalf("token info device: %d %s\n%s", code, errOut, out)
	}
	_, errOut, code = cli(t, "token", "info", "--token", "pkcs11:token=absent")
	if code != 1 || !strings.Contains(errOut, `no token matches token=absent in module `) {
		t.Fatalf("absent token: %d %s", code, errOut)
	}
	_, _, code = cli(t, "token", "info", "--no-such-flag")
	if code != 2 {
		t.Fatalf("usage error exit status %d, want 2", code)
	}
	// pkcs11-tool sees the same, real SoftHSM2 token.
	if tool, err := exec.LookPath("pkcs11-tool"); err == nil {
		mod := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "module", 2)[1], "\n", 2)[0])
		c := exec.Command(tool, "--module", mod, "--list-slots")
		c.Env = append(os.Environ(), "SOFTHSM2_CONF="+filepath.Join(testHome, "softhsm2.conf"))
		var b bytes.Buffer
		c.Stdout, c.Stderr = &b, &b
		if err := c.Run(); err != nil || !strings.Contains(b.String(), "token label        : kms") {
			t.Fatalf("pkcs11-tool: %v\n%s", err, b.String())
		}
	} else {
		t.Fatal("pkcs11-tool not installed: run ./scripts/install-deps")
	}
}
