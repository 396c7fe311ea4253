package xks_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider/xks"
)

// TestTokenFailures: a token that does not answer in time is
// DependencyTimeoutException (503); a token that fails is
// InternalException (500) whose cause reaches the record (the server's
// log), not the client; the health check reports UNAVAILABLE.
func TestTokenFailures(t *testing.T) {
	created := softhsmtest.Create(t)
	cfg := created.Config
	cfg.MaxSessions, cfg.PoolWait = 1, time.Minute
	tok, err := hsm.Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{ID: []byte(xks.KeyIDPrefix + "k"), Label: "foo",
		Usage: hsm.UsageEncrypt | hsm.UsageDecrypt}); err != nil {
		t.Fatal(err)
	}
	recs := &records{}
	h, err := xks.New(bg, xks.Config{Token: tok, Observer: recs, Timeout: 50 * time.Millisecond,
		File: &xks.File{URIPrefix: prefix, Credentials: []xks.Credential{{AccessKeyID: testID, SecretAccessKey: testSecret}},
			Keys: map[string]xks.Key{"foo": {}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := &fixture{t: t, url: srv.URL, recs: recs}

	// The pool's only session is busy until the answer is in.
	busy, release := make(chan struct{}), make(chan struct{})
	go hsm.Do(context.Background(), tok, func(*hsm.Session) (int, error) {
		close(busy)
		<-release
		return 0, nil
	})
	<-busy
	a := f.post("keys/foo/encrypt", encryptBody("x", "", ""))
	close(release)
	if a.status != 503 || a.str("errorName") != xks.DependencyTimeoutException {
		t.Fatalf("busy token: %d %s", a.status, a.raw)
	}
	if recs.last().Err == nil {
		t.Fatal("the timeout's cause is not in the record")
	}

	tok.Close()
	a = f.post("keys/foo/encrypt", encryptBody("x", "", ""))
	if a.status != 500 || a.str("errorName") != xks.InternalException || strings.Contains(a.raw, "closed") {
		t.Fatalf("closed token: %d %s", a.status, a.raw)
	}
	if r := recs.last(); r.Err == nil || !strings.Contains(r.Err.Error(), "closed") {
		t.Fatalf("record: %+v", r)
	}
	// The deep health check says so.
	if h := f.post("health", `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"r"}}`); h.status != 200 ||
		!strings.Contains(h.raw, `"healthStatus":"UNAVAILABLE"`) {
		t.Fatalf("health of a closed token: %s", h.raw)
	}
}

// sickLog is an observer whose writes fail, as an audit log on a full disk.
type sickLog struct{ records }

func (*sickLog) Healthy() bool { return false }

// TestAuditUnavailableRefuses: while the audit log cannot be written, a
// signed XKS request is refused (InternalException, 500) before the token
// is used, and its record is still offered to the log.
func TestAuditUnavailableRefuses(t *testing.T) {
	tok := softhsmtest.New(t)
	log := &sickLog{}
	h, err := xks.New(bg, xks.Config{Token: tok.Token, Observer: log,
		File: &xks.File{URIPrefix: prefix, Credentials: []xks.Credential{{AccessKeyID: testID, SecretAccessKey: testSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := &fixture{t: t, url: srv.URL}
	a := f.post("health", `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"r"}}`)
	if a.status != 500 || a.str("errorName") != xks.InternalException || !strings.Contains(a.str("errorMessage"), "audit log") {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if r := log.last(); r.Code != xks.InternalException || r.Action != xks.OpGetHealthStatus {
		t.Fatalf("record %+v", r)
	}
}
