package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
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
	out := h.run(t, "init")
	for _, m := range initKeyLine.FindAllStringSubmatch(out, -1) {
		if m[1] == "AccessKeyId" {
			h.adminID = m[2]
		} else {
			h.adminSecr = m[2]
		}
	}
	if h.adminID == "" || h.adminSecr == "" {
		t.Fatalf("init printed no admin key:\n%s", out)
	}
	return h
}

// run runs the binary on the home and returns its standard output; a
// failure fails the test.
func (h secHome) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(h.bin, append([]string{"--home", h.home}, args...)...)
	var stderr []byte
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	if err != nil {
		t.Fatalf("p11kms %v: %v\n%s%s", args, err, out, stderr)
	}
	return string(out)
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
