package awskms_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/awskms"
	"github.com/p11kms/p11kms/provider/wire"
)

// withTarget makes the SDK send (and sign) another X-Amz-Target.
func withTarget(target string) func(*kms.Options) {
	return func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Build.Add(middleware.BuildMiddlewareFunc("p11kmsTarget", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				in.Request.(*smithyhttp.Request).Header.Set("X-Amz-Target", target)
				return next.HandleBuild(ctx, in)
			}), middleware.After)
		})
	}
}

// tamper is an HTTP client that changes each signed request before
// sending it.
type tamper func(r *http.Request, body []byte) []byte

func (f tamper) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	body = f(r, body)
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return http.DefaultClient.Do(r)
}

func withClient(c aws.HTTPClient) func(*kms.Options) {
	return func(o *kms.Options) { o.HTTPClient = c }
}

// TestSignatureRefusals: what AWS answers to a wrong secret, a stale or
// future date, a changed body, an unsigned or changed X-Amz-Target, an
// unknown access key, a missing signature and a replayed request.
func TestSignatureRefusals(t *testing.T) {
	e := newEnv(t)
	call := func(c *kms.Client) error {
		_, err := c.GenerateRandom(ctx(), &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(16)})
		return err
	}
	wantErr(t, "wrong secret", call(e.client(accessID, otherSec)), "InvalidSignatureException", 400)
	wantErr(t, "unknown access key", call(e.client("AKIAUNKNOWN000000000", secret)), "UnrecognizedClientException", 400)

	e.clock.offset.Store(int64(10 * time.Minute))
	err := call(e.admin())
	wantErr(t, "stale date", err, "InvalidSignatureException", 400)
	if !strings.Contains(err.Error(), "Signature expired") {
		t.Fatalf("stale date: %v", err)
	}
	e.clock.offset.Store(int64(-10 * time.Minute))
	wantErr(t, "future date", call(e.admin()), "InvalidSignatureException", 400)
	e.clock.offset.Store(0)

	changed := tamper(func(_ *http.Request, b []byte) []byte { return bytes.Replace(b, []byte("16"), []byte("99"), 1) })
	wantErr(t, "changed body", call(e.client(accessID, secret, withClient(changed))), "InvalidSignatureException", 400)

	unsignedTarget := tamper(func(r *http.Request, b []byte) []byte {
		target := r.Header.Get("X-Amz-Target")
		r.Header.Del("X-Amz-Target")
		r.Header.Del("Authorization")
		sum := sha256.Sum256(b)
		creds := aws.Credentials{AccessKeyID: accessID, SecretAccessKey: secret}
		if err := v4.NewSigner().SignHTTP(ctx(), creds, r, hex.EncodeToString(sum[:]), "kms", region, time.Now()); err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-Amz-Target", target)
		return b
	})
	err = call(e.client(accessID, secret, withClient(unsignedTarget)))
	wantErr(t, "unsigned X-Amz-Target", err, "IncompleteSignatureException", 400)
	if !strings.Contains(err.Error(), "x-amz-target") {
		t.Fatalf("unsigned X-Amz-Target: %v does not name it", err)
	}
	swapped := tamper(func(r *http.Request, b []byte) []byte {
		r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
		return b
	})
	wantErr(t, "X-Amz-Target changed after signing", call(e.client(accessID, secret, withClient(swapped))), "InvalidSignatureException", 400)
	noAuth := tamper(func(r *http.Request, b []byte) []byte { r.Header.Del("Authorization"); return b })
	wantErr(t, "no signature", call(e.client(accessID, secret, withClient(noAuth))), "MissingAuthenticationTokenException", 403)

	// The same signed request twice: the second is refused.
	var first *http.Response
	twice := clientFunc(func(r *http.Request) (*http.Response, error) {
		body, _ := io.ReadAll(r.Body)
		again := r.Clone(r.Context())
		r.Body, again.Body = io.NopCloser(bytes.NewReader(body)), io.NopCloser(bytes.NewReader(body))
		var err error
		if first, err = http.DefaultClient.Do(r); err != nil {
			return nil, err
		}
		first.Body.Close()
		return http.DefaultClient.Do(again)
	})
	wantErr(t, "replayed request", call(e.client(accessID, secret, withClient(twice))), "InvalidSignatureException", 400)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("the first of the replayed pair: HTTP %d", first.StatusCode)
	}
}

type clientFunc func(*http.Request) (*http.Response, error)

func (f clientFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// withBuild changes the request in the SDK's build step, before it is
// signed.
func withBuild(change func(r *smithyhttp.Request) *smithyhttp.Request) func(*kms.Options) {
	return func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Build.Add(middleware.BuildMiddlewareFunc("p11kmsChange", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				in.Request = change(in.Request.(*smithyhttp.Request))
				return next.HandleBuild(ctx, in)
			}), middleware.After)
		})
	}
}

func withBody(body string) func(*kms.Options) {
	return withBuild(func(r *smithyhttp.Request) *smithyhttp.Request {
		r, _ = r.SetStream(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		return r
	})
}

// TestMalformedRequests: signed requests whose body or Content-Type is
// wrong get AWS's SerializationException (or 413 for a body over the
// limit), naming what is wrong.
func TestMalformedRequests(t *testing.T) {
	e := newEnv(t)
	call := func(opts ...func(*kms.Options)) error {
		_, err := e.client(accessID, secret, opts...).DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String("k")})
		return err
	}
	for name, cs := range map[string]struct {
		opt    func(*kms.Options)
		code   string
		status int
		names  string
	}{
		"unknown member": {withBody(`{"KeyId":"k","Bogus":1}`), "SerializationException", 400, "Bogus"},
		"wrong type":     {withBody(`{"KeyId":7}`), "SerializationException", 400, "KeyId"},
		"not JSON":       {withBody(`KeyId=k`), "SerializationException", 400, "JSON"},
		"trailing data":  {withBody(`{"KeyId":"k"} {}`), "SerializationException", 400, "after"},
		"content type": {withBuild(func(r *smithyhttp.Request) *smithyhttp.Request {
			r.Header.Set("Content-Type", "application/json")
			return r
		}), "SerializationException", 400, "Content-Type"},
		"body over limit": {withBody(`{"KeyId":"` + strings.Repeat("k", 70<<10) + `"}`), "RequestEntityTooLargeException", 413, "bytes"},
	} {
		err := call(cs.opt)
		wantErr(t, name, err, cs.code, cs.status)
		if !strings.Contains(err.Error(), cs.names) {
			t.Fatalf("%s: %v does not name %s", name, err, cs.names)
		}
	}
}

// TestExpectedHost: with wire.Config.ExpectedHost (serve --expected-host)
// a request signed for another Host is InvalidSignatureException naming
// the flag; one signed for the expected host is served.
func TestExpectedHost(t *testing.T) {
	tok := softhsmtest.New(t)
	svc := provider.New(tok.Token, provider.Options{Region: region, Account: account})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: accessID, AccessKeySecret: secret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	srv := httptest.NewServer(awskms.New(awskms.Config{Config: wire.Config{KMS: svc, Keys: keys, ExpectedHost: "kms.example.test"}}))
	defer srv.Close()
	e := &env{srv: srv}
	// Signed for kms.example.test, sent to the test server.
	toServer := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, strings.TrimPrefix(srv.URL, "http://"))
	}}}
	named := e.client(accessID, secret, func(o *kms.Options) { o.BaseEndpoint = aws.String("http://kms.example.test"); o.HTTPClient = toServer })
	if _, err := named.ListKeys(ctx(), &kms.ListKeysInput{}); err != nil {
		t.Fatalf("signed for the expected host: %v", err)
	}
	_, err := e.admin().ListKeys(ctx(), &kms.ListKeysInput{})
	wantErr(t, "signed for another host", err, "InvalidSignatureException", 400)
	if !strings.Contains(err.Error(), "--expected-host") {
		t.Fatalf("%v does not name --expected-host", err)
	}
}
