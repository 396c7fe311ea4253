package awskms_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

const (
	region    = "us-east-1"
	account   = "111122223333"
	accessID  = "AKIAP11KMSTEST000001"
	secret    = "p11kms/test/secret/000000000000000000001"
	limitedID = "AKIAP11KMSLIMITED002"
	otherSec  = "p11kms/test/secret/000000000000000000002"
)

// recorder is an Observer keeping every record.
type recorder struct {
	mu   sync.Mutex
	recs []wire.Record
}

func (r *recorder) Observe(rec wire.Record) { r.mu.Lock(); r.recs = append(r.recs, rec); r.mu.Unlock() }

func (r *recorder) last() wire.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recs[len(r.recs)-1]
}

// clock is the server clock: real time plus a settable offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

type env struct {
	srv   *httptest.Server
	kms   *provider.Service
	obs   *recorder
	clock *clock
}

// newEnv serves the composed server (router, metrics, audit) over a
// fresh SoftHSM2 token on loopback.
func newEnv(t testing.TB) *env {
	tok := softhsmtest.New(t)
	e := &env{kms: provider.New(tok.Token, provider.Options{Region: region, Account: account}), obs: &recorder{}, clock: &clock{}}
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: accessID, AccessKeySecret: secret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}},
		wire.AccessKey{AccessKeyId: limitedID, AccessKeySecret: otherSec,
			Policy: wire.Policy{Actions: []string{"Describe*", "Encrypt", "Decrypt", "List*"}, Keys: []string{"alias/allowed*"}}},
	)
	e.srv = httptest.NewServer(server.New(server.Config{KMS: e.kms, Keys: keys, Audit: e.obs, Now: e.clock.Now}))
	t.Cleanup(e.srv.Close)
	return e
}

// client is the AWS SDK's KMS client pointed at the server, without
// retries (a refused request is seen once).
func (e *env) client(id, sec string, opts ...func(*kms.Options)) *kms.Client {
	cfg := aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider(id, sec, ""),
		Retryer: func() aws.Retryer { return aws.NopRetryer{} }}
	return kms.NewFromConfig(cfg, append([]func(*kms.Options){func(o *kms.Options) { o.BaseEndpoint = aws.String(e.srv.URL) }}, opts...)...)
}

func (e *env) admin() *kms.Client { return e.client(accessID, secret) }

// wantErr checks err is the AWS error code with the HTTP status.
func wantErr(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("%s: %s with HTTP status %v, want %d", what, code, err, status)
	}
	if ae.ErrorMessage() == "" {
		t.Fatalf("%s: %s without a message", what, code)
	}
}

func ctx() context.Context { return context.Background() }

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}
