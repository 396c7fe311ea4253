package xks_test

import (
	"crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider/xks"
)

// TestLoadFileNamesTheField: every bad configuration is refused naming
// the field and what it accepts.
func TestLoadFileNamesTheField(t *testing.T) {
	cred := `"credentials":[{"accessKeyId":"` + testID + `","secretAccessKey":"` + testSecret + `"}]`
	for _, c := range []struct{ name, json, want string }{
		{"unknown field", `{` + cred + `,"keyz":{}}`, `unknown field "keyz"`},
		{"no credentials", `{"keys":{}}`, "credentials: at least one"},
		{"short id", `{"credentials":[{"accessKeyId":"AKID","secretAccessKey":"` + testSecret + `"}]}`, "credentials[0].accessKeyId: accepted 20 to 30"},
		{"lower-case id", `{"credentials":[{"accessKeyId":"` + strings.ToLower(testID) + `","secretAccessKey":"` + testSecret + `"}]}`, "A-Z and 2-7"},
		{"short secret", `{"credentials":[{"accessKeyId":"` + testID + `","secretAccessKey":"short"}]}`, "credentials[0].secretAccessKey: accepted 43 to 64"},
		{"duplicate id", `{"credentials":[{"accessKeyId":"` + testID + `","secretAccessKey":"` + testSecret + `"},{"accessKeyId":"` + testID + `","secretAccessKey":"` + testSecret + `"}]}`, "appears twice"},
		{"prefix slash", `{"uriPrefix":"/a",` + cred + `}`, "uriPrefix \"/a\": accepted"},
		{"prefix chars", `{"uriPrefix":"a b",` + cred + `}`, "uriPrefix \"a b\": accepted"},
		{"prefix long", `{"uriPrefix":"` + strings.Repeat("a", 120) + `",` + cred + `}`, "at most 128"},
		{"key id", `{` + cred + `,"keys":{"a/b":{}}}`, `externalKeyId "a/b": accepted`},
		{"own label", `{` + cred + `,"keys":{"k":{"label":"p11kms/1234/5678"}}}`, "p11kms's own keys"},
		{"fleet", `{` + cred + `,"fleetSize":-1}`, "fleetSize -1"},
		{"cmk and label", `{` + cred + `,"keys":{"k":{"cmk":"alias/a","label":"x"}}}`, "keys.k: cmk names a CMK"},
	} {
		p := filepath.Join(t.TempDir(), "xks.json")
		os.WriteFile(p, []byte(c.json), 0o600)
		if _, err := xks.LoadFile(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	p := filepath.Join(t.TempDir(), "xks.json")
	os.WriteFile(p, []byte(`{"uriPrefix":"a/b-c_d",`+cred+`,"keys":{"k.1":{"label":"hsm key","principals":["*"]}}}`), 0o600)
	if f, err := xks.LoadFile(p); err != nil || f.URIPrefix != "a/b-c_d" {
		t.Fatalf("good file: %v", err)
	}
}

// TestReloadRefusesABrokenFile: Reload swaps credentials for the next
// requests; a configuration that does not check is refused and the running
// one stays.
func TestReloadRefusesABrokenFile(t *testing.T) {
	tok := softhsmtest.New(t)
	h, err := xks.New(bg, xks.Config{Token: tok.Token,
		File: &xks.File{Credentials: []xks.Credential{{AccessKeyID: testID, SecretAccessKey: testSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := &fixture{t: t, url: srv.URL}
	health := func(secret string) int {
		return f.send("POST", "/kms/xks/v1/health", `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"`+rand.Text()+`"}}`, secret).status
	}
	if c := health(testSecret); c != 200 {
		t.Fatalf("before: %d", c)
	}
	if err := h.Reload(&xks.File{}); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("an empty configuration was accepted: %v", err)
	}
	if c := health(testSecret); c != 200 {
		t.Fatalf("after the refused reload: %d", c)
	}
	const other = "AnotherSecretOfFortyThreeCharactersOrMore12345"
	if err := h.Reload(&xks.File{Credentials: []xks.Credential{{AccessKeyID: testID, SecretAccessKey: other}}}); err != nil {
		t.Fatal(err)
	}
	if health(testSecret) != 401 || health(other) != 200 {
		t.Fatal("the reloaded secret is not the one used")
	}
}
