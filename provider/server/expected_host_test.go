package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerrors "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/provider/xks"
)

// With ExpectedHost (serve --expected-host) a request signed for another
// host is refused with the dialect's signature error, on both APIs: a
// request captured on its way to another instance sharing the access keys
// does not replay here (issue 17, finding 8). Clients that name the
// expected host (here through the server as their HTTP proxy) are served.
func TestExpectedHostRefusesOtherSignedHosts(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	const want = "kms.example.test"
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, ExpectedHost: want}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	ali := func(endpoint string, proxy *string) error {
		c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(endpoint), Protocol: tea.String("HTTP"), HttpProxy: proxy,
			RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(aliID), AccessKeySecret: tea.String(aliSecret)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListKeys(&alikms.ListKeysRequest{})
		return err
	}
	if err := ali(want, tea.String(srv.URL)); err != nil {
		t.Fatalf("Alibaba signed for %s: %v", want, err)
	}
	err := ali(addr, nil)
	var se *tea.SDKError
	if !errors.As(err, &se) || tea.StringValue(se.Code) != "SignatureDoesNotMatch" || !strings.Contains(tea.StringValue(se.Message), "--expected-host") {
		t.Errorf("Alibaba signed for %s: %v; want SignatureDoesNotMatch naming --expected-host", addr, err)
	}

	tc := func(endpoint, proxy string) error {
		cpf := tcProfile(endpoint)
		cpf.HttpProfile.Proxy = proxy
		c, err := tckms.NewClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", cpf)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListKeys(tckms.NewListKeysRequest())
		return err
	}
	if err := tc(want, srv.URL); err != nil {
		t.Fatalf("Tencent signed for %s: %v", want, err)
	}
	err = tc(addr, "")
	var te *tcerrors.TencentCloudSDKError
	if !errors.As(err, &te) || te.Code != "AuthFailure.SignatureFailure" || !strings.Contains(te.Message, "--expected-host") {
		t.Errorf("Tencent signed for %s: %v; want AuthFailure.SignatureFailure naming --expected-host", addr, err)
	}
	xksExpectedHost(t, tok, want)
}

// xksExpectedHost: the XKS proxy (SigV4 signs the host) takes the same
// check from the pipeline: a health request signed by aws-sdk-go-v2's
// signer for the expected host is served, one signed for the address it
// is sent to is AuthenticationFailedException naming --expected-host.
func xksExpectedHost(t *testing.T, tok *softhsmtest.Token, want string) {
	const id, secret, prefix = "AKIDXKSHOSTTEST234567ABCD", "PleaseReplaceThisWithSomeSecretOfLength43To64", "p"
	f := &xks.File{URIPrefix: prefix, Credentials: []xks.Credential{{AccessKeyID: id, SecretAccessKey: secret}}}
	h, err := xks.New(context.Background(), xks.Config{Token: tok.Token, File: f, ExpectedHost: want})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	health := func(host string) (int, string) {
		body := `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"r1"}}`
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+prefix+"/kms/xks/v1/health", strings.NewReader(body))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, req,
			hex.EncodeToString(sum[:]), xks.Service, "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := health(want); status != http.StatusOK {
		t.Errorf("XKS signed for %s: %d %s", want, status, body)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	if status, body := health(addr); status != http.StatusUnauthorized || !strings.Contains(body, "AuthenticationFailedException") ||
		!strings.Contains(body, "--expected-host") {
		t.Errorf("XKS signed for %s: %d %s; want 401 AuthenticationFailedException naming --expected-host", addr, status, body)
	}
}

func TestHostMatches(t *testing.T) {
	for _, c := range []struct {
		expected, host string
		ok             bool
	}{
		{"", "anything:1", true},
		{"kms.example.test", "kms.example.test", true},
		{"kms.example.test", "KMS.Example.Test:8443", true},
		{"kms.example.test:443", "kms.example.test:8443", false},
		{"kms.example.test:443", "kms.example.test:443", true},
		{"kms.example.test", "kms.cn-hangzhou.aliyuncs.com", false},
		{"kms.example.test", "kms.example.test.evil", false},
		{"::1", "[::1]:8080", true},
	} {
		if got := wire.HostMatches(c.expected, c.host); got != c.ok {
			t.Errorf("HostMatches(%q, %q) = %v, want %v", c.expected, c.host, got, c.ok)
		}
	}
}
