package xks_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/provider/xks"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

var bg = context.Background()

const (
	testID     = "AKIDXKSTESTKEY234567ABCD"
	testSecret = "PleaseReplaceThisWithSomeSecretOfLength43To64"
	prefix     = "example/uri/path/prefix"
	principal  = "arn:aws:iam::123456789012:user/Alice"
)

// knownKey is the value of the "foo" key, so that tests can check the
// token's output with Go's GCM.
var knownKey = bytes.Repeat([]byte{7}, 32)

// records collects the pipeline's records (what metrics and the audit log see).
type records struct {
	mu  sync.Mutex
	all []wire.Record
}

func (r *records) Observe(rec wire.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, rec)
}

func (r *records) last() wire.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all[len(r.all)-1]
}

// fixture is an XKS handler on a loopback server over a fresh token with
// the keys foo (encrypt+decrypt, known value), enc (encrypt only), dec
// (decrypt only), none, aes128, ghost (configured, not in the token) and
// alice (only Alice's Decrypt); foo-off and cmk-off are foo and the CMK
// orders marked disabled.
type fixture struct {
	t    testing.TB
	url  string
	recs *records
	tok  *softhsmtest.Token
	// kms holds the CMK orders (alias/xks-orders, external key "cmk").
	kms    *provider.Service
	orders string
}

type allowN struct {
	mu sync.Mutex
	n  int
}

func (a *allowN) Allow(context.Context, string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n--
	return a.n >= 0, nil
}

func newFixture(t testing.TB, limiter wire.Limiter) *fixture {
	t.Helper()
	tok := softhsmtest.New(t)
	both := hsm.UsageEncrypt | hsm.UsageDecrypt
	xksID := func(label string) []byte { return []byte(xks.KeyIDPrefix + label) }
	if _, err := tok.CreateSecretKey(bg, pkcs11.CKK_AES, knownKey, hsm.SecretKeyOptions{ID: xksID("foo"), Label: "foo", Usage: both}); err != nil {
		t.Fatal(err)
	}
	for label, u := range map[string]hsm.Usage{"enc": hsm.UsageEncrypt, "dec": hsm.UsageDecrypt, "none": 0, "alice-key": both} {
		if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{ID: xksID(label), Label: label, Usage: u}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tok.GenerateAESKey(bg, 128, hsm.SecretKeyOptions{ID: xksID("aes128"), Label: "aes128", Usage: both}); err != nil {
		t.Fatal(err)
	}
	// Two keys not made for XKS (a random CKA_ID, like an imported key's).
	for _, label := range []string{"imported", "hsm-admin"} {
		if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: label, Usage: both}); err != nil {
			t.Fatal(err)
		}
	}
	f := &xks.File{URIPrefix: prefix, Credentials: []xks.Credential{{AccessKeyID: testID, SecretAccessKey: testSecret}},
		Keys: map[string]xks.Key{"foo": {}, "enc": {}, "dec": {}, "none": {}, "aes128": {}, "ghost": {}, "imported": {}, "hsm-admin": {Foreign: true},
			"alice": {Label: "alice-key", Principals: []string{"arn:aws:iam::*:user/Alice"}, Operations: []string{"Decrypt", "Generate*"}}}}
	kms := provider.New(tok.Token, provider.Options{})
	orders, disabled := newCMK(t, kms), newCMK(t, kms)
	if _, err := kms.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/xks-orders", KeyId: orders}); err != nil {
		t.Fatal(err)
	}
	if _, err := kms.DisableKey(bg, &provider.KeyIdRequest{KeyId: disabled}); err != nil {
		t.Fatal(err)
	}
	f.Keys["cmk"] = xks.Key{CMK: "alias/xks-orders"}
	f.Keys["cmk-disabled"] = xks.Key{CMK: disabled}
	f.Keys["cmk-gone"] = xks.Key{CMK: "alias/none"}
	f.Keys["foo-off"] = xks.Key{Label: "foo", Disabled: true}
	f.Keys["cmk-off"] = xks.Key{CMK: "alias/xks-orders", Disabled: true}
	recs := &records{}
	h, err := xks.New(bg, xks.Config{Token: tok.Token, KMS: kms, File: f, Observer: recs, Limiter: limiter, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, url: srv.URL, recs: recs, tok: tok, kms: kms, orders: orders}
}

func newCMK(t testing.TB, kms *provider.Service) string {
	t.Helper()
	r, err := kms.CreateKey(bg, &provider.CreateKeyRequest{Description: "xks"})
	if err != nil {
		t.Fatal(err)
	}
	return r.KeyMetadata.KeyId
}

// answer is one HTTP response, its JSON body decoded.
type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (a answer) str(field string) string { s, _ := a.body[field].(string); return s }

// post signs body with aws-sdk-go-v2's SigV4 signer (service
// kms-xks-proxy) and sends it to path under the prefix.
func (f *fixture) post(path, body string) answer {
	return f.send(http.MethodPost, "/"+prefix+"/kms/xks/v1/"+path, body, testSecret)
}

func (f *fixture) send(method, path, body, secret string) answer {
	f.t.Helper()
	req := f.signed(method, path, body, secret)
	return do(f.t, req)
}

func (f *fixture) signed(method, path, body, secret string) *http.Request {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: testID, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(bg, creds, req, hex.EncodeToString(sum[:]), xks.Service, "us-east-1", time.Now()); err != nil {
		f.t.Fatal(err)
	}
	return req
}

func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(b)}
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("response is not JSON: %q", b)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return a
}

// meta is a requestMetadata for the KMS operation.
func meta(op string) string {
	return `"requestMetadata":{"awsPrincipalArn":"` + principal + `","kmsKeyArn":"arn:aws:kms:us-east-2:123456789012:key/1234abcd",` +
		`"kmsOperation":"` + op + `","kmsRequestId":"` + rand.Text() + `","kmsViaService":"ebs"}`
}

var b64 = base64.StdEncoding

func enc(s string) string { return b64.EncodeToString([]byte(s)) }

// encryptBody is an Encrypt request; extra is more JSON members.
func encryptBody(plaintext, aad string, extra string) string {
	s := `{` + meta("Encrypt") + `,"plaintext":"` + enc(plaintext) + `","encryptionAlgorithm":"AES_GCM"`
	if aad != "" {
		s += `,"additionalAuthenticatedData":"` + enc(aad) + `"`
	}
	return s + extra + `}`
}

// decryptBody is the Decrypt request for an Encrypt answer.
func decryptBody(e answer, aad string) string {
	s := `{` + meta("Decrypt") + `,"ciphertext":"` + e.str("ciphertext") + `","initializationVector":"` + e.str("initializationVector") +
		`","authenticationTag":"` + e.str("authenticationTag") + `","encryptionAlgorithm":"AES_GCM"`
	if md := e.str("ciphertextMetadata"); md != "" {
		s += `,"ciphertextMetadata":"` + md + `"`
	}
	if aad != "" {
		s += `,"additionalAuthenticatedData":"` + enc(aad) + `"`
	}
	return s + `}`
}
