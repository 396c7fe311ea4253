package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	util "github.com/alibabacloud-go/tea-utils/v2/service"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/google/uuid"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// aliRaw signs Alibaba RPC requests with the given access key through the
// official SDK's generic CallApi.
type aliRaw struct {
	c *openapi.Client
}

func newAliRaw(t *testing.T, addr, id, secret string) aliRaw {
	t.Helper()
	c, err := openapi.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
		AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return aliRaw{c}
}

// call returns the answer's body (nil on an error), its error code ("" on
// success) and the error message.
func (a aliRaw) call(action string, params map[string]string) (map[string]any, string, string) {
	q := map[string]*string{}
	for k, v := range params {
		q[k] = tea.String(v)
	}
	out, err := a.c.CallApi(&openapi.Params{Action: tea.String(action), Version: tea.String("2016-01-20"), Protocol: tea.String("HTTP"),
		Pathname: tea.String("/"), Method: tea.String("POST"), AuthType: tea.String("AK"), Style: tea.String("RPC"),
		ReqBodyType: tea.String("formData"), BodyType: tea.String("json")}, &openapi.OpenApiRequest{Query: q}, &util.RuntimeOptions{})
	if err == nil {
		body, _ := out["body"].(map[string]any)
		return body, "", ""
	}
	if se, ok := err.(*tea.SDKError); ok {
		return nil, tea.StringValue(se.Code), tea.StringValue(se.Message)
	}
	return nil, "not an SDK error", err.Error()
}

// A key allowed only ReEncrypt cannot get a data key out: the p11kms-only
// PublicKeyBlob (with WrappingKeySpec and WrappingAlgorithm) is not a
// ReEncrypt parameter, so the attacker's own RSA key is refused as an
// unknown parameter and nothing decryptable comes back (issue 17, finding 1).
func TestReEncryptReleasesNoPlaintext(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	const rid, rsecret = "LTAI5tReEncryptOnly00001", "ReEncryptOnlySecretForLocalKMS0001"
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: rid, AccessKeySecret: rsecret, Policy: wire.Policy{Actions: []string{"ReEncrypt"}, Keys: []string{"*"}}})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys}))
	defer srv.Close()
	k, err := kms.CreateKey(t.Context(), &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := kms.GenerateDataKey(t.Context(), &provider.GenerateDataKeyRequest{KeyId: k.KeyMetadata.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&attacker.PublicKey)
	c := newAliRaw(t, strings.TrimPrefix(srv.URL, "http://"), rid, rsecret)
	for _, extra := range []map[string]string{
		{"PublicKeyBlob": base64.StdEncoding.EncodeToString(der), "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"},
		{"PublicKeyBlob": base64.StdEncoding.EncodeToString(der)},
	} {
		params := map[string]string{"CiphertextBlob": g.CiphertextBlob}
		for k, v := range extra {
			params[k] = v
		}
		body, code, msg := c.call("ReEncrypt", params)
		if code != provider.CodeInvalidParameter || !strings.Contains(msg, "PublicKeyBlob") {
			t.Errorf("ReEncrypt with PublicKeyBlob (%d params): code %q message %q body %v; want %s naming PublicKeyBlob",
				len(params), code, msg, body, provider.CodeInvalidParameter)
		}
		if body != nil {
			t.Errorf("ReEncrypt with PublicKeyBlob answered %v", body)
		}
	}
	// The same key keeps its honest use, and its answer carries no key.
	body, code, msg := c.call("ReEncrypt", map[string]string{"CiphertextBlob": g.CiphertextBlob, "DestinationKeyId": k.KeyMetadata.KeyId})
	if code != "" || body["CiphertextBlob"] == nil || body["ExportedDataKey"] != nil {
		t.Fatalf("honest ReEncrypt: %s %s %v", code, msg, body)
	}
}

// metricsShape is the /metrics body's size and its number of series.
func metricsShape(t *testing.T, base string) (size, series int) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			series++
		}
	}
	return len(b), series
}

// unsignedWithAction sends one request that names action but carries no
// valid signature, in one of the forms the router sends to either dialect.
func unsignedWithAction(t *testing.T, base string, form int, action string) {
	t.Helper()
	var req *http.Request
	switch form {
	case 0: // Tencent TC3 headers with a well-formed but false Authorization
		req, _ = http.NewRequest(http.MethodPost, base+"/", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-TC-Action", action)
		req.Header.Set("X-TC-Version", "2019-01-18")
		req.Header.Set("X-TC-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		req.Header.Set("Authorization", "TC3-HMAC-SHA256 Credential="+tcID+"/"+time.Now().UTC().Format("2006-01-02")+
			"/kms/tc3_request, SignedHeaders=content-type;host, Signature="+strings.Repeat("0", 64))
	case 1: // Tencent v1 query string
		req, _ = http.NewRequest(http.MethodGet, base+"/?SecretId=x&Action="+url.QueryEscape(action), nil)
	default: // Alibaba RPC query string
		req, _ = http.NewRequest(http.MethodGet, base+"/?AccessKeyId=x&Action="+url.QueryEscape(action), nil)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// Nothing an unauthenticated caller sends creates a metric series: 500
// unsigned requests with distinct random actions, in every form the router
// accepts, leave /metrics with the same series and (but for the counts'
// digits) the same size (issue 17, finding 2).
func TestUnsignedRequestsCreateNoMetricSeries(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys}))
	defer srv.Close()
	random := func() string { return "Act" + strings.ToUpper(rand.Text()) }
	for form := range 3 { // the one series each form's refusal makes
		unsignedWithAction(t, srv.URL, form, random())
	}
	size0, series0 := metricsShape(t, srv.URL)
	for i := range 500 {
		unsignedWithAction(t, srv.URL, i%3, random())
	}
	size1, series1 := metricsShape(t, srv.URL)
	if series1 != series0 || size1 > size0+256 { // the counts and sums grow by a few digits
		t.Fatalf("500 unsigned requests took /metrics from %d series, %d bytes to %d series, %d bytes", series0, size0, series1, size1)
	}
}

// A logged v1 GET Decrypt re-split so that its Nonce swallows the Region
// pair ("777&Region=ap-guangzhou" without Region) signs the same string but
// is a new nonce: refused, so the victim's plaintext does not come back; the
// honest v1 request works (issue 17, finding 4).
func TestTencentV1ResplitReplayIsRefused(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	capture := &capturing{next: server.New(server.Config{KMS: kms, Keys: keys})}
	srv := httptest.NewServer(capture)
	defer srv.Close()
	k, err := kms.CreateKey(t.Context(), &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	secret := base64.StdEncoding.EncodeToString([]byte("the victim's data key"))
	en, err := kms.Encrypt(t.Context(), &provider.EncryptRequest{KeyId: k.KeyMetadata.KeyId, Plaintext: secret})
	if err != nil {
		t.Fatal(err)
	}
	cpf := tcProfile(strings.TrimPrefix(srv.URL, "http://"))
	cpf.SignMethod = "HmacSHA256"
	cpf.HttpProfile.ReqMethod = http.MethodGet
	c, err := tckms.NewClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", cpf)
	if err != nil {
		t.Fatal(err)
	}
	dr := tckms.NewDecryptRequest()
	dr.CiphertextBlob = common.StringPtr(en.CiphertextBlob)
	out, err := c.Decrypt(dr)
	if err != nil || out.Response.Plaintext == nil || *out.Response.Plaintext != secret {
		t.Fatalf("honest v1 GET Decrypt: %v", err)
	}
	logged := capture.lastRequest()
	u, _ := url.Parse(logged.target)
	q := u.Query()
	if q.Get("Region") == "" || q.Get("Nonce") == "" {
		t.Fatalf("the logged request has no Region or Nonce: %s", logged.target)
	}
	for name, resplit := range map[string]func(url.Values){
		"Nonce swallows Region": func(q url.Values) {
			q.Set("Nonce", q.Get("Nonce")+"&Region="+q.Get("Region"))
			q.Del("Region")
		},
	} {
		r := logged.clone()
		q := u.Query()
		resplit(q)
		r.target = "/?" + q.Encode()
		code, status := r.send(t, srv.URL)
		if !strings.HasPrefix(code, "AuthFailure") && !strings.HasPrefix(code, "InvalidParameter") {
			t.Errorf("%s: the re-split replay answered code %q (HTTP %d), want AuthFailure.* or InvalidParameter*", name, code, status)
		}
	}
	if code, _ := logged.send(t, srv.URL); code != "AuthFailure.SignatureExpire" {
		t.Errorf("the logged request replayed as it was: %q, want AuthFailure.SignatureExpire", code)
	}
}

// A request refused by the policy or the rate limit leaves no nonce in the
// replay memory: sent again, it is refused for the same reason, not as a
// replay — so a key with no permissions, or throttled requests, cannot fill
// the memory (issue 17, finding 3). Both dialects, official SDKs, the
// requests as they reached the server.
func TestRefusedRequestsConsumeNoReplayMemory(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	none := wire.Policy{Actions: []string{"GenerateRandom"}, Keys: []string{"*"}}
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: none},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: none})
	capture := &capturing{next: server.New(server.Config{KMS: kms, Keys: keys, Rate: 1e-6, Burst: 2})}
	srv := httptest.NewServer(capture)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ali := newAliRaw(t, addr, aliID, aliSecret)
	cpf := tcProfile(addr)
	cpf.SignMethod = "HmacSHA256"
	cpf.HttpProfile.ReqMethod = http.MethodGet
	tc, err := tckms.NewClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", cpf)
	if err != nil {
		t.Fatal(err)
	}
	resend := func(what, want string) {
		t.Helper()
		if code, status := capture.lastRequest().send(t, srv.URL); code != want {
			t.Errorf("%s sent again: code %q (HTTP %d), want %q", what, code, status, want)
		}
	}
	// Refused by the policy (each access key's burst of 2 allows it and its resend).
	if _, code, _ := ali.call("ListKeys", nil); code != "Forbidden.NoPermission" {
		t.Fatalf("alibaba ListKeys: %q", code)
	}
	resend("alibaba request refused by the policy", "Forbidden.NoPermission")
	if _, err := tc.ListKeys(tckms.NewListKeysRequest()); err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Fatalf("tencent ListKeys: %v", err)
	}
	resend("tencent v1 request refused by the policy", "UnauthorizedOperation")
	// Refused by the rate limit (the burst is spent).
	if _, code, _ := ali.call("ListKeys", nil); code != "Rejected.Throttling" {
		t.Fatalf("alibaba after the burst: %q", code)
	}
	resend("alibaba throttled request", "Rejected.Throttling")
	if _, err := tc.ListKeys(tckms.NewListKeysRequest()); err == nil || !strings.Contains(err.Error(), "RequestLimitExceeded") {
		t.Fatalf("tencent after the burst: %v", err)
	}
	resend("tencent throttled request", "RequestLimitExceeded")
}

// RequestIds are unguessable: 128 random bits in UUID v4 form, so two
// consecutive ids share no counter (issue 17, finding 12, second half).
func TestRequestIdsAreRandom(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: wire.NewAccessKeys()}))
	defer srv.Close()
	for _, c := range []struct {
		form   int
		header string
	}{{0, "X-TC-RequestId"}, {2, "x-acs-request-id"}} {
		var ids []string
		for range 2 {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/?AccessKeyId=x&Action=DescribeKey", nil)
			if c.form == 0 {
				req, _ = http.NewRequest(http.MethodGet, srv.URL+"/?SecretId=x&Action=DescribeKey", nil)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			id := strings.ToLower(resp.Header.Get(c.header))
			u, err := uuid.Parse(id)
			if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
				t.Fatalf("%s %q: not a UUID v4 (%v)", c.header, id, err)
			}
			ids = append(ids, strings.ReplaceAll(id, "-", ""))
		}
		lo0, _ := strconv.ParseUint(ids[0][20:], 16, 64)
		lo1, _ := strconv.ParseUint(ids[1][20:], 16, 64)
		if lo0 == lo1 || lo1-lo0 <= 1 || lo0-lo1 <= 1 || ids[0][:8] == ids[1][:8] {
			t.Fatalf("%s: consecutive ids %s and %s share a counter pattern", c.header, ids[0], ids[1])
		}
	}
}
