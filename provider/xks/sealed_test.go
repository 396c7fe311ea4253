package xks_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/internal/secretseal"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider/xks"
)

// xksSealer is the token's sealer for XKS secrets.
func xksSealer(t *testing.T, tok *softhsmtest.Token) *secretseal.Sealer {
	t.Helper()
	s, err := secretseal.New(bg, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	x, err := s.WithPurpose(xks.SealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// A plaintext secret in the file is sealed in it on the first load (every
// other field kept, mode 0600, nothing else left in the directory) and
// opened in memory; the next load finds nothing to seal. A sealed secret
// that does not open (another token, an edit) is refused naming the
// credential; a credential with both forms or neither is refused.
func TestLoadSealedFileSealsPlaintextSecrets(t *testing.T) {
	tok := softhsmtest.New(t)
	s := xksSealer(t, tok)
	dir := t.TempDir()
	p := filepath.Join(dir, "xks.json")
	plain := `{"uriPrefix":"tenant-1","fleetSize":2,"credentials":[{"accessKeyId":"` + testID + `","secretAccessKey":"` + testSecret + `"}],` +
		`"keys":{"foo":{"principals":["arn:aws:iam::*:role/app"],"operations":["Encrypt"],"disabled":true}}}`
	if err := os.WriteFile(p, []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	f, sealed, err := xks.LoadSealedFile(p, s)
	if err != nil || sealed != 1 {
		t.Fatalf("first load: %d sealed, %v", sealed, err)
	}
	if f.Credentials[0].SecretAccessKey != testSecret || f.URIPrefix != "tenant-1" || f.FleetSize != 2 ||
		!f.Keys["foo"].Disabled || f.Keys["foo"].Operations[0] != "Encrypt" {
		t.Fatalf("loaded configuration: %+v", f)
	}
	b, _ := os.ReadFile(p)
	if strings.Contains(string(b), testSecret) || strings.Contains(string(b), `"secretAccessKey"`) || !strings.Contains(string(b), `"sealedSecretAccessKey"`) {
		t.Fatalf("the file still holds the secret, or not sealed:\n%s", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v after sealing, want 0600", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left in the directory: %v", ents)
	}
	again, sealed, err := xks.LoadSealedFile(p, s)
	if err != nil || sealed != 0 || again.Credentials[0].SecretAccessKey != testSecret {
		t.Fatalf("second load: %d sealed, %v", sealed, err)
	}
	if _, _, err := xks.LoadSealedFile(p, xksSealer(t, softhsmtest.New(t))); !errors.Is(err, secretseal.ErrNotSealedHere) ||
		!strings.Contains(err.Error(), "credentials[0].sealedSecretAccessKey ("+testID+")") {
		t.Fatalf("another token's sealer: %v", err)
	}
	for name, cred := range map[string]string{
		"both":    `{"accessKeyId":"` + testID + `","secretAccessKey":"` + testSecret + `","sealedSecretAccessKey":"AAAA"}`,
		"neither": `{"accessKeyId":"` + testID + `"}`,
	} {
		os.WriteFile(p, []byte(`{"credentials":[`+cred+`]}`), 0o600)
		if _, err := xks.LoadFile(p); err == nil || !strings.Contains(err.Error(), "credentials[0]: give exactly one of secretAccessKey") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// UpdateFile writes the change sealed, and writes nothing when the result
// does not check (the last credential deleted).
func TestUpdateFileWritesSealedOrNothing(t *testing.T) {
	tok := softhsmtest.New(t)
	s := xksSealer(t, tok)
	p := filepath.Join(t.TempDir(), "xks.json")
	n, err := xks.UpdateFile(p, s, func(f *xks.File) error {
		f.Credentials = append(f.Credentials, xks.Credential{AccessKeyID: testID, SecretAccessKey: testSecret})
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("create: %d %v", n, err)
	}
	before, _ := os.ReadFile(p)
	if strings.Contains(string(before), testSecret) {
		t.Fatalf("written in plaintext:\n%s", before)
	}
	_, err = xks.UpdateFile(p, s, func(f *xks.File) error { f.Credentials = nil; return nil })
	if err == nil || !strings.Contains(err.Error(), "credentials: at least one") {
		t.Fatalf("deleting the last credential: %v", err)
	}
	if after, _ := os.ReadFile(p); string(after) != string(before) {
		t.Fatal("a refused change was written")
	}
}

// A key marked disabled in the file answers keyStatus DISABLED and
// refuses Encrypt and Decrypt with InvalidStateException, token key or
// CMK; the same key unmarked still works.
func TestDisabledKeyFollowsTheFile(t *testing.T) {
	f := newFixture(t, nil)
	e := f.post("keys/foo/encrypt", encryptBody("secret", "", ""))
	if e.status != 200 {
		t.Fatalf("foo encrypt: %d %s", e.status, e.raw)
	}
	for _, id := range []string{"foo-off", "cmk-off"} {
		if m := f.post("keys/"+id+"/metadata", `{`+meta("DescribeKey")+`}`); m.status != 200 || m.str("keyStatus") != "DISABLED" {
			t.Errorf("%s metadata: %d %s", id, m.status, m.raw)
		}
		if a := f.post("keys/"+id+"/encrypt", encryptBody("x", "", "")); a.status != 400 || a.str("errorName") != xks.InvalidStateException {
			t.Errorf("%s encrypt: %d %s", id, a.status, a.raw)
		}
	}
	if a := f.post("keys/foo-off/decrypt", decryptBody(e, "")); a.status != 400 || a.str("errorName") != xks.InvalidStateException {
		t.Errorf("foo-off decrypt: %d %s", a.status, a.raw)
	}
	if m := f.post("keys/foo/metadata", `{`+meta("DescribeKey")+`}`); m.str("keyStatus") != "ENABLED" {
		t.Errorf("foo metadata: %s", m.raw)
	}
}
