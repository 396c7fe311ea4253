package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerrors "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/audit"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

const (
	aliID, aliSecret = "LTAI5tTestAccessKeyId01", "TestAccessKeySecretForLocalKMS0001"
	tcID, tcSecret   = "AKIDTestSecretId0000000000000000000001", "TestSecretKeyForLocalKMS000000001"
)

func all() wire.Policy { return wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}} }

// aliClient is the official Alibaba v3 SDK client for the server at addr,
// signing with the test's Alibaba access key.
func aliClient(t *testing.T, addr string) *alikms.Client {
	t.Helper()
	c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
		AccessKeyId: tea.String(aliID), AccessKeySecret: tea.String(aliSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tcProfile points the Tencent SDK at the server at addr over HTTP.
func tcProfile(addr string) *profile.ClientProfile {
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint = addr
	cpf.HttpProfile.Scheme = "http"
	return cpf
}

// tcClient is the official Tencent SDK client for the server at addr,
// signing with the test's Tencent SecretId.
func tcClient(t *testing.T, addr string) *tckms.Client {
	t.Helper()
	c, err := tckms.NewClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", tcProfile(addr))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Both official SDKs on one port: a key made through Alibaba's API is used
// through Tencent's; health, readiness, metrics and the audit chain.
func TestBothAPIsOnOnePort(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(auditPath, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: "LTAIreadonly", AccessKeySecret: "readonly-secret-0000000000", Policy: wire.Policy{Actions: []string{"Describe*"}, Keys: []string{"*"}}},
	)
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, Audit: log}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	ali := aliClient(t, addr)
	ck, err := ali.CreateKey(&alikms.CreateKeyRequest{Description: tea.String("one port")})
	if err != nil {
		t.Fatal(err)
	}
	keyID := tea.StringValue(ck.Body.KeyMetadata.KeyId)
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := wrap.MarshalPublicKeyDER(&priv.PublicKey)
	ex, err := ali.GenerateAndExportDataKey(&alikms.GenerateAndExportDataKeyRequest{KeyId: tea.String(keyID),
		PublicKeyBlob: tea.String(base64.StdEncoding.EncodeToString(der)), WrappingKeySpec: tea.String("RSA_2048"),
		WrappingAlgorithm: tea.String("RSAES_OAEP_SHA_256")})
	if err != nil {
		t.Fatal(err)
	}

	tc := tcClient(t, addr)
	dreq := tckms.NewDecryptRequest()
	dreq.CiphertextBlob = ex.Body.CiphertextBlob
	dec, err := tc.Decrypt(dreq)
	if err != nil {
		t.Fatal(err)
	}
	alg, _ := wrap.LookupAlgorithm("RSAES_OAEP_SHA_256")
	ct, _ := base64.StdEncoding.DecodeString(tea.StringValue(ex.Body.ExportedDataKey))
	exported, err := alg.Decrypt(priv, ct)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := base64.StdEncoding.DecodeString(*dec.Response.Plaintext)
	if !bytes.Equal(pt, exported) {
		t.Fatal("Tencent Decrypt of an Alibaba blob differs from the exported key")
	}
	greq := tckms.NewGenerateDataKeyRequest()
	greq.KeyId = common.StringPtr(keyID)
	greq.KeySpec = common.StringPtr("AES_256")
	if _, err := tc.GenerateDataKey(greq); err != nil {
		t.Fatal(err)
	}
	// A policy refusal reaches each SDK as its own code.
	ro, _ := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
		AccessKeyId: tea.String("LTAIreadonly"), AccessKeySecret: tea.String("readonly-secret-0000000000")})
	_, err = ro.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: tea.String(keyID)})
	if se, ok := err.(*tea.SDKError); !ok || tea.StringValue(se.Code) != "Forbidden.NoPermission" {
		t.Fatalf("policy refusal over Alibaba: %v", err)
	}
	if _, err := ro.DescribeKey(&alikms.DescribeKeyRequest{KeyId: tea.String(keyID)}); err != nil {
		t.Fatalf("allowed action refused: %v", err)
	}
	badTC, _ := tckms.NewClient(common.NewCredential(tcID, "wrong-secret"), "ap-guangzhou", tcProfile(addr))
	_, err = badTC.GenerateDataKey(greq)
	if te, ok := err.(*tcerrors.TencentCloudSDKError); !ok || te.Code != "AuthFailure.SignatureFailure" {
		t.Fatalf("wrong secret over Tencent: %v", err)
	}

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	code, metrics := get("/metrics")
	for _, want := range []string{`p11kms_requests_total{action="GenerateAndExportDataKey",api="aliyun",code="OK"} 1`,
		`p11kms_requests_total{action="Decrypt",api="tencent",code="OK"} 1`, "p11kms_request_duration_seconds_bucket", "p11kms_session_pool_in_use"} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Fatalf("metrics lack %q:\n%s", want, metrics)
		}
	}
	// The audit log has one line per KMS request, a valid chain, and no secrets.
	b, _ := os.ReadFile(auditPath)
	if res, err := audit.Verify(bytes.NewReader(b)); err != nil || res.Lines < 7 {
		t.Fatalf("audit: %+v %v", res, err)
	}
	for _, secret := range []string{aliSecret, tcSecret, tea.StringValue(ex.Body.ExportedDataKey), *dec.Response.Plaintext, base64.StdEncoding.EncodeToString(pt)} {
		if strings.Contains(string(b), secret) {
			t.Fatal("the audit log holds a secret or key")
		}
	}
	if !strings.Contains(string(b), `"code":"Forbidden.NoPermission"`) || !strings.Contains(string(b), keyID) {
		t.Fatalf("audit lines lack the refusal or the key:\n%s", b)
	}
	// A closed token makes /readyz fail.
	tok.Token.Close()
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a closed token: %d", code)
	}
	_ = context.Background
}

// routeSpy is a wire.Handler that remembers what the router gave it.
type routeSpy struct {
	served bool
	body   []byte
}

func (s *routeSpy) ServeHTTP(http.ResponseWriter, *http.Request) {}
func (s *routeSpy) ServeRequest(_ http.ResponseWriter, req *wire.Request) {
	s.served = true
	s.body, _ = req.Body()
}

// routesTo runs r through server.Route and reports whether Tencent got it,
// and the body the handler read (AWS must get none of these).
func routesTo(r *http.Request) (tencent bool, body []byte) {
	ali, tc, aws := &routeSpy{}, &routeSpy{}, &routeSpy{}
	server.Route(1<<20, ali, tc, aws).ServeHTTP(httptest.NewRecorder(), r)
	if aws.served {
		panic("an Alibaba or Tencent request was routed to AWS")
	}
	if tc.served {
		return true, tc.body
	}
	return false, ali.body
}

func TestRouting(t *testing.T) {
	for _, c := range []struct {
		hdr, query string
		tencent    bool
	}{
		{"X-TC-Action: GenerateDataKey", "", true},
		{"Authorization: TC3-HMAC-SHA256 Credential=x", "", true},
		{"", "SecretId=AKID1&Action=Decrypt", true},
		{"Authorization: ACS3-HMAC-SHA256 Credential=x", "", false},
		{"", "AccessKeyId=LTAI&Action=Decrypt&Signature=x", false},
	} {
		r := httptest.NewRequest("POST", "/?"+c.query, nil)
		if c.hdr != "" {
			kv := strings.SplitN(c.hdr, ": ", 2)
			r.Header.Set(kv[0], kv[1])
		}
		if tc, _ := routesTo(r); tc != c.tencent {
			t.Errorf("%q %q: tencent=%v", c.hdr, c.query, !c.tencent)
		}
	}
	// A v1 form body with SecretId routes to Tencent and stays readable.
	body := "Action=Decrypt&SecretId=AKID1&Nonce=1"
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tc, b := routesTo(r)
	if !tc {
		t.Fatal("v1 form body not routed to Tencent")
	}
	if string(b) != body {
		t.Fatalf("body after routing: %q", b)
	}
}

// An InternalFailure reaches the client as the vague wire error; its cause
// (here: the token closed under the server) goes to the server's log, one
// error line per failure, for both APIs.
func TestInternalFailureCauseIsLoggedNotSent(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	var logBuf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logBuf}, nil))
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, Log: logger}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ali := aliClient(t, addr)
	if _, err := ali.CreateKey(&alikms.CreateKeyRequest{}); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	_, err := ali.CreateKey(&alikms.CreateKeyRequest{})
	var sdkErr *tea.SDKError
	if !errors.As(err, &sdkErr) || tea.StringValue(sdkErr.Code) != provider.CodeInternalFailure || strings.Contains(err.Error(), "closed") {
		t.Fatalf("Alibaba SDK error %v: want InternalFailure without its cause", err)
	}
	tc := tcClient(t, addr)
	creq := tckms.NewCreateKeyRequest()
	creq.Alias = common.StringPtr("after-close")
	_, err = tc.CreateKey(creq)
	if err == nil || strings.Contains(err.Error(), "closed") {
		t.Fatalf("Tencent SDK error %v: want an internal error without its cause", err)
	}
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	mu.Unlock()
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want one per failure (2):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, api := range []string{"aliyun", "tencent"} {
		var l map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil {
			t.Fatal(err)
		}
		if l["level"] != "ERROR" || l["api"] != api || l["action"] != "CreateKey" || !strings.Contains(fmt.Sprint(l["err"]), "closed") {
			t.Errorf("log line %s: want an ERROR for %s CreateKey naming the cause (token closed)", lines[i], api)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
