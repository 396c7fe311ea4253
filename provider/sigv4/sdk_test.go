package sigv4_test

import (
	"bytes"
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

	"github.com/p11kms/p11kms/provider/sigv4"
)

const (
	testID     = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// signed is one request as aws-sdk-go-v2's signer signs it, and how to
// change it before it is sent.
type signed struct {
	service, region, secret, token string
	at                             time.Time
	body                           string
	payloadHash                    string // "" = the body's hash
	target                         bool   // send X-Amz-Target (signed)
	afterSign                      func(r *http.Request)
	path                           string
}

// send signs the request with the SDK's signer, sends it to a loopback
// server that runs the verifier on the request as received, and returns
// the verifier's result.
func send(t *testing.T, cfg sigv4.Config, s signed) error {
	t.Helper()
	if cfg.Lookup == nil {
		cfg.Lookup = func(id string) (sigv4.Key, bool) {
			return sigv4.Key{Secret: testSecret, SessionToken: s.token}, id == testID
		}
	}
	if cfg.Now == nil {
		now := time.Now()
		cfg.Now = func() time.Time { return now }
	}
	v, err := sigv4.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, got = v.Verify(r, b)
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+s.path+"/", strings.NewReader(s.body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if s.target {
		req.Header.Set("X-Amz-Target", "TrentService.GenerateRandom")
	}
	ph := s.payloadHash
	if ph == "" {
		sum := sha256.Sum256([]byte(s.body))
		ph = hex.EncodeToString(sum[:])
	}
	if s.at.IsZero() {
		s.at = cfg.Now()
	}
	creds := aws.Credentials{AccessKeyID: testID, SecretAccessKey: s.secret, SessionToken: s.token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, ph, s.service, s.region, s.at); err != nil {
		t.Fatal(err)
	}
	if s.afterSign != nil {
		s.afterSign(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return got
}

var kmsConfig = sigv4.Config{Service: "kms", SignedHeaders: []string{"X-Amz-Target"}, RequireSignedPayload: true}

func good() signed {
	return signed{service: "kms", region: "eu-west-1", secret: testSecret, body: `{"NumberOfBytes":32}`, target: true}
}

// TestSDKSignedRequestsVerify: requests signed by aws-sdk-go-v2's SigV4
// signer, as received by a real server, verify for both service names,
// with and without a session token.
func TestSDKSignedRequestsVerify(t *testing.T) {
	if err := send(t, kmsConfig, good()); err != nil {
		t.Fatalf("kms: %v", err)
	}
	s := good()
	s.token = "FwoGZXIvYXdzEXAMPLETOKEN"
	if err := send(t, kmsConfig, s); err != nil {
		t.Fatalf("kms with session token: %v", err)
	}
	xks := sigv4.Config{Service: "kms-xks-proxy", Region: "us-east-1", RequireSignedPayload: true}
	s = good()
	s.service, s.region, s.target, s.path = "kms-xks-proxy", "us-east-1", false, "/kms/xks/v1/keys/key%201/encrypt"
	if err := send(t, xks, s); err != nil {
		t.Fatalf("kms-xks-proxy: %v", err)
	}
}

// TestRefusals: each way a request can fail names its kind (the AWS
// error) and the part that did not match.
func TestRefusals(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		cfg    sigv4.Config
		change func(*signed)
		kind   sigv4.Kind
		part   string
	}{
		{"wrong secret", kmsConfig, func(s *signed) { s.secret = "not-the-secret" }, sigv4.Mismatch, "Signature"},
		{"stale date", kmsConfig, func(s *signed) { s.at = now.Add(-6 * time.Minute) }, sigv4.Expired, sigv4.HeaderDate},
		{"future date", kmsConfig, func(s *signed) { s.at = now.Add(6 * time.Minute) }, sigv4.Expired, sigv4.HeaderDate},
		{"changed body", kmsConfig, func(s *signed) {
			s.afterSign = func(r *http.Request) {
				r.Body = io.NopCloser(strings.NewReader(`{"NumberOfBytes":99}`))
			}
		}, sigv4.Mismatch, "Signature"},
		{"body differs from x-amz-content-sha256", kmsConfig, func(s *signed) {
			s.afterSign = func(r *http.Request) {
				r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64))
			}
		}, sigv4.Mismatch, "x-amz-content-sha256"},
		{"unsigned X-Amz-Target", kmsConfig, func(s *signed) {
			s.target = false
			s.afterSign = func(r *http.Request) { r.Header.Set("X-Amz-Target", "TrentService.Decrypt") }
		}, sigv4.Incomplete, "SignedHeaders"},
		{"changed X-Amz-Target", kmsConfig, func(s *signed) {
			s.afterSign = func(r *http.Request) { r.Header.Set("X-Amz-Target", "TrentService.Decrypt") }
		}, sigv4.Mismatch, "Signature"},
		{"UNSIGNED-PAYLOAD", kmsConfig, func(s *signed) {
			s.payloadHash = sigv4.UnsignedPayload
			s.afterSign = func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", sigv4.UnsignedPayload) }
		}, sigv4.Incomplete, "x-amz-content-sha256"},
		{"wrong service", kmsConfig, func(s *signed) { s.service = "s3" }, sigv4.Mismatch, "Credential"},
		{"wrong region", sigv4.Config{Service: "kms", Region: "us-east-1"}, func(s *signed) {}, sigv4.Mismatch, "Credential"},
		{"unknown key", sigv4.Config{Service: "kms", Lookup: func(string) (sigv4.Key, bool) { return sigv4.Key{}, false }}, func(s *signed) {}, sigv4.UnknownKey, "Credential"},
		{"token for a key without one", sigv4.Config{Service: "kms", Lookup: func(string) (sigv4.Key, bool) { return sigv4.Key{Secret: testSecret}, true }},
			func(s *signed) { s.token = "FwoGZXIvYXdzEXAMPLETOKEN" }, sigv4.UnknownKey, sigv4.HeaderSecurityToken},
		{"wrong token", sigv4.Config{Service: "kms", Lookup: func(string) (sigv4.Key, bool) { return sigv4.Key{Secret: testSecret, SessionToken: "other"}, true }},
			func(s *signed) { s.token = "FwoGZXIvYXdzEXAMPLETOKEN" }, sigv4.UnknownKey, sigv4.HeaderSecurityToken},
		{"missing token", sigv4.Config{Service: "kms", Lookup: func(string) (sigv4.Key, bool) { return sigv4.Key{Secret: testSecret, SessionToken: "needed"}, true }},
			func(s *signed) {}, sigv4.UnknownKey, sigv4.HeaderSecurityToken},
		{"no Authorization", kmsConfig, func(s *signed) {
			s.afterSign = func(r *http.Request) { r.Header.Del("Authorization") }
		}, sigv4.Missing, "Authorization"},
		{"scope date differs from X-Amz-Date", kmsConfig, func(s *signed) {
			s.afterSign = func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/"+now.UTC().Format("20060102")+"/", "/20000101/", 1))
			}
		}, sigv4.Mismatch, "Credential"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Now = func() time.Time { return now }
			s := good()
			c.change(&s)
			err := send(t, cfg, s)
			var e *sigv4.Error
			if !errors.As(err, &e) || e.Kind != c.kind || e.Part != c.part {
				t.Fatalf("got %v (%#v), want kind %v (%s) naming %s", err, e, c.kind, c.kind.AWSCode(), c.part)
			}
		})
	}
}

// TestMismatchCarriesCanonicalRequest: a signature mismatch reports the
// canonical request and string to sign this server computed.
func TestMismatchCarriesCanonicalRequest(t *testing.T) {
	s := good()
	s.secret = "other"
	err := send(t, kmsConfig, s)
	var e *sigv4.Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.CanonicalRequest, "POST\n/\n\n") || !strings.HasPrefix(e.StringToSign, "AWS4-HMAC-SHA256\n") {
		t.Fatalf("got %#v", err)
	}
	if strings.Contains(e.Error(), testSecret) || bytes.Contains([]byte(e.CanonicalRequest+e.StringToSign), []byte(testSecret)) {
		t.Fatal("secret in the error")
	}
}

// TestNewRequiresServiceAndLookup: a verifier without a service name or
// key lookup is refused.
func TestNewRequiresServiceAndLookup(t *testing.T) {
	if _, err := sigv4.New(sigv4.Config{Service: "kms"}); err == nil {
		t.Fatal("no Lookup accepted")
	}
	if _, err := sigv4.New(sigv4.Config{Lookup: func(string) (sigv4.Key, bool) { return sigv4.Key{}, false }}); err == nil {
		t.Fatal("no Service accepted")
	}
}
