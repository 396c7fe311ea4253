package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/provider/wire"
)

var (
	sharedBinOnce sync.Once
	sharedBinPath string
	sharedBinErr  error
)

// sharedBinary builds p11kms once for this file's tests.
func sharedBinary(t *testing.T) string {
	t.Helper()
	sharedBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "p11kms-bin-")
		if err != nil {
			sharedBinErr = err
			return
		}
		sharedBinPath = filepath.Join(dir, "p11kms")
		if out, err := exec.Command("go", "build", "-o", sharedBinPath, ".").CombinedOutput(); err != nil {
			sharedBinErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if sharedBinErr != nil {
		t.Fatal(sharedBinErr)
	}
	return sharedBinPath
}

// secHome is a fresh home made by `p11kms init`, and its admin key as init
// printed it.
type secHome struct {
	bin, home          string
	adminID, adminSecr string
}

var initKeyLine = regexp.MustCompile(`(?m)^\s+(AccessKeyId|AccessKeySecret)\s+(\S+)$`)

func newSecHome(t *testing.T) secHome {
	t.Helper()
	h := secHome{bin: sharedBinary(t), home: filepath.Join(t.TempDir(), "home")}
	h.adminID, h.adminSecr = initPrintedKey(t, h.run(t, "init"))
	return h
}

// initPrintedKey is the admin key `p11kms init` printed (shown once: the
// file holds its secret sealed).
func initPrintedKey(t *testing.T, out string) (id, secret string) {
	t.Helper()
	for _, m := range initKeyLine.FindAllStringSubmatch(out, -1) {
		if m[1] == "AccessKeyId" {
			id = m[2]
		} else {
			secret = m[2]
		}
	}
	if id == "" || secret == "" {
		t.Fatalf("init printed no admin key:\n%s", out)
	}
	return id, secret
}

// run runs the binary on the home and returns its standard output; a
// failure fails the test.
func (h secHome) run(t *testing.T, args ...string) string {
	t.Helper()
	out, _ := h.run2(t, args...)
	return out
}

// run2 is run returning standard output and standard error.
func (h secHome) run2(t *testing.T, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(h.bin, append([]string{"--home", h.home}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("p11kms %v: %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// serveLogged starts `p11kms serve` on the home with its log in a file,
// and waits until /healthz answers.
func (h secHome) serveLogged(t *testing.T, addr string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "serve.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lf.Close() })
	cmd := exec.Command(h.bin, append([]string{"--home", h.home, "serve", "--listen", addr, "--sweep-interval", "0"}, extra...)...)
	cmd.Stderr = lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		cmd.Process.Kill()
		b, _ := os.ReadFile(logPath)
		t.Fatalf("serve on %s did not start:\n%s", addr, b)
	}
	return cmd, logPath
}

// pollUntil calls cond until it holds or the bound passes, and reports
// whether it held. The bound is generous: tests assert that cond came
// true at all, never how fast.
func pollUntil(bound time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createAccessKey runs `p11kms accesskey create` with args and returns the
// key it printed.
func (h secHome) createAccessKey(t *testing.T, args ...string) (id, secret string) {
	t.Helper()
	var k struct{ AccessKeyId, AccessKeySecret string }
	out := h.run(t, append([]string{"accesskey", "create"}, args...)...)
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.AccessKeyId == "" || k.AccessKeySecret == "" {
		t.Fatalf("accesskey create printed %q: %v", out, err)
	}
	return k.AccessKeyId, k.AccessKeySecret
}

func aliKMS(t *testing.T, addr, id, secret string) *alikms.Client {
	t.Helper()
	c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"),
		RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The README's own example policy works end to end (issue 17, finding 11):
// `p11kms accesskey create --actions GenerateDataKey,Decrypt --keys
// 'alias/app-*'`, then `p11kms serve`; that key makes a data key under
// alias/app-one and decrypts it (the blob names only the key id; the alias
// points to it now), and a blob under a key with no matching alias is
// refused.
func TestReadmeAliasPolicyDecrypts(t *testing.T) {
	h := newSecHome(t)
	id, secret := h.createAccessKey(t, "--actions", "GenerateDataKey,Decrypt", "--keys", "alias/app-*")
	addr := freePort(t)
	srv := startServe(t, h.bin, h.home, addr)
	defer stopServe(t, srv)
	admin, app := aliKMS(t, addr, h.adminID, h.adminSecr), aliKMS(t, addr, id, secret)
	keyFor := func(alias string) string {
		ck, err := admin.CreateKey(&alikms.CreateKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CreateAlias(&alikms.CreateAliasRequest{AliasName: tea.String(alias), KeyId: ck.Body.KeyMetadata.KeyId}); err != nil {
			t.Fatal(err)
		}
		return tea.StringValue(ck.Body.KeyMetadata.KeyId)
	}
	keyFor("alias/app-one")
	other := keyFor("alias/billing")
	g, err := app.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: tea.String("alias/app-one")})
	if err != nil {
		t.Fatalf("GenerateDataKey alias/app-one with the README policy: %v", err)
	}
	d, err := app.Decrypt(&alikms.DecryptRequest{CiphertextBlob: g.Body.CiphertextBlob})
	if err != nil {
		t.Fatalf("Decrypt of its own data key with the README policy: %v", err)
	}
	if tea.StringValue(d.Body.Plaintext) != tea.StringValue(g.Body.Plaintext) {
		t.Fatal("Decrypt returned another plaintext")
	}
	og, err := admin.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: tea.String(other)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = app.Decrypt(&alikms.DecryptRequest{CiphertextBlob: og.Body.CiphertextBlob})
	if code := sdkCode(err); code != "Forbidden.NoPermission" {
		t.Fatalf("Decrypt of a blob under %s (alias/billing only): %q, want Forbidden.NoPermission", other, code)
	}
}

// Access-key changes reach a running serve without a restart (issue 17,
// finding 7): after `p11kms accesskey delete` (which says when it takes
// effect) the deleted key is refused, a key created meanwhile is accepted,
// and a malformed file (reloaded at once on SIGHUP) is logged while the
// last good set stays in force.
func TestAccessKeyChangesReachRunningServe(t *testing.T) {
	h := newSecHome(t)
	id, secret := h.createAccessKey(t)
	addr := freePort(t)
	srv, logPath := h.serveLogged(t, addr)
	defer stopServe(t, srv)
	works := func(c *alikms.Client) string {
		_, err := c.ListKeys(&alikms.ListKeysRequest{})
		return sdkCode(err)
	}
	victim := aliKMS(t, addr, id, secret)
	if code := works(victim); code != "" {
		t.Fatalf("the key before its deletion: %s", code)
	}
	_, stderr := h.run2(t, "accesskey", "delete", id)
	if !strings.Contains(stderr, "takes effect in every running `p11kms serve`") || !strings.Contains(stderr, "within 1s") {
		t.Errorf("accesskey delete does not say when it takes effect: %q", stderr)
	}
	start := time.Now()
	if !pollUntil(30*time.Second, func() bool { return works(victim) == "InvalidAccessKeyId.NotFound" }) {
		t.Fatalf("the deleted key is still accepted: %s", works(victim))
	}
	t.Logf("deleted key refused after %v", time.Since(start))
	nid, nsecret := h.createAccessKey(t)
	fresh := aliKMS(t, addr, nid, nsecret)
	if !pollUntil(30*time.Second, func() bool { return works(fresh) == "" }) {
		t.Fatalf("a key created while serve runs is refused: %s", works(fresh))
	}
	file := filepath.Join(h.home, "access-keys.json")
	if err := os.WriteFile(file, []byte(`{"AccessKeys": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Process.Signal(syscall.SIGHUP)
	if !pollUntil(30*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "reload failed; the last good set stays in force")
	}) {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("a malformed access-keys file was not reported:\n%s", b)
	}
	if code := works(fresh); code != "" {
		t.Fatalf("after a malformed file the last good set is gone: %s", code)
	}
	if code := works(aliKMS(t, addr, h.adminID, h.adminSecr)); code != "" {
		t.Fatalf("the admin key after a malformed file: %s", code)
	}
}

// Access-key secrets are sealed at rest under the token's key (issue 17,
// finding 12): neither init's admin secret nor a created key's secret is in
// access-keys.json, which alone opens nothing; a plaintext entry left by an
// older p11kms is sealed by the first serve without losing any entry, and
// every key keeps working.
func TestAccessKeySecretsSealedAtRest(t *testing.T) {
	h := newSecHome(t)
	id, secret := h.createAccessKey(t)
	file := filepath.Join(h.home, "access-keys.json")
	var f struct{ AccessKeys []map[string]any }
	b, _ := os.ReadFile(file)
	if err := json.Unmarshal(b, &f); err != nil || len(f.AccessKeys) != 2 {
		t.Fatalf("access keys: %v %s", err, b)
	}
	for _, s := range []string{h.adminSecr, secret} {
		if strings.Contains(string(b), s) {
			t.Fatalf("a secret is in the file in plaintext:\n%s", b)
		}
	}
	if _, err := wire.LoadAccessKeys(file); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("the file alone opened: %v", err)
	}
	// An entry as an older p11kms wrote it: the secret in plaintext.
	const legacyID, legacySecret = "LTAIlegacyPlaintext000001", "LegacyPlaintextSecretForLocalKMS01"
	f.AccessKeys = append(f.AccessKeys, map[string]any{"AccessKeyId": legacyID, "AccessKeySecret": legacySecret,
		"Policy": map[string]any{"Actions": []string{"*"}, "Keys": []string{"*"}}})
	b, _ = json.Marshal(f)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	srv, _ := h.serveLogged(t, addr)
	defer stopServe(t, srv)
	for _, k := range [][2]string{{h.adminID, h.adminSecr}, {id, secret}, {legacyID, legacySecret}} {
		if _, err := aliKMS(t, addr, k[0], k[1]).ListKeys(&alikms.ListKeysRequest{}); err != nil {
			t.Errorf("access key %s after the migration: %v", k[0], err)
		}
	}
	b, _ = os.ReadFile(file)
	if strings.Contains(string(b), legacySecret) {
		t.Errorf("the plaintext secret was not sealed by serve:\n%s", b)
	}
	list, err := wire.ReadAccessKeysFile(file)
	if err != nil || len(list) != 3 {
		t.Fatalf("entries after the migration: %v %v", list, err)
	}
	if out := h.run(t, "accesskey", "list"); !strings.Contains(out, legacyID) || strings.Contains(out, "Secret") {
		t.Errorf("accesskey list: %s", out)
	}
}
