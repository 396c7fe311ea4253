package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// tc3Fixture is a server behind a capturing handler, one key, and the
// Tencent SDK signing as the admin.
type tc3Fixture struct {
	kms *provider.Service
	cap *capturing
	n   *atomic.Int64 // requests served
	url string
	id  string
	c   *tckms.Client
}

func newTC3Fixture(t *testing.T, cfg server.Config) tc3Fixture {
	t.Helper()
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	cfg.KMS, cfg.Keys = kms, wire.NewAccessKeys(wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	cp := &capturing{next: server.New(cfg)}
	n := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); cp.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	k, err := kms.CreateKey(t.Context(), &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return tc3Fixture{kms: kms, cap: cp, n: n, url: srv.URL, id: k.KeyMetadata.KeyId, c: tcClient(t, strings.TrimPrefix(srv.URL, "http://"))}
}

func (f tc3Fixture) state(t *testing.T) string {
	t.Helper()
	d, err := f.kms.DescribeKey(t.Context(), &provider.KeyIdRequest{KeyId: f.id})
	if err != nil {
		t.Fatal(err)
	}
	return d.KeyMetadata.KeyState
}

// tcCode is the Tencent error code of an answer ("" for success).
func tcCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Response struct{ Error struct{ Code string } }
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return out.Response.Error.Code
}

// setAction replaces X-TC-Action, which the SDK sets in its own case.
func setAction(h http.Header, action string) {
	for k := range h {
		if strings.EqualFold(k, "X-TC-Action") {
			delete(h, k)
		}
	}
	h["X-TC-Action"] = []string{action}
}

// sendAs sends a captured request, with X-TC-Action set to action, over a
// connection of its own (an attacker's): a fresh transport.
func (f tc3Fixture) sendAs(t *testing.T, c capturedRequest, action string) string {
	t.Helper()
	setAction(c.header, action)
	req, err := http.NewRequest(c.method, f.url+c.target, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = c.header.Clone()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return tcCode(t, resp)
}

// sendOnConn sends the captured request as each action in turn over one
// TCP connection (an honest kept-alive client) and returns the codes.
func (f tc3Fixture) sendOnConn(t *testing.T, c capturedRequest, actions ...string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	var codes []string
	for _, a := range actions {
		req, _ := http.NewRequest(c.method, f.url+c.target, bytes.NewReader(c.body))
		req.Header = c.header.Clone()
		setAction(req.Header, a)
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(rd, req)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, tcCode(t, resp))
	}
	return codes
}

// keepRequest is a transport that keeps the request and sends nothing.
type keepRequest struct{ last *capturedRequest }

func (k keepRequest) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	*k.last = capturedRequest{r.Method, r.URL.RequestURI(), h, body}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"Response":{"RequestId":"-"}}`)), Request: r}, nil
}

// signOnly returns the request the SDK signs in call, not sent.
func (f tc3Fixture) signOnly(t *testing.T, call func(c *tckms.Client)) capturedRequest {
	t.Helper()
	var kept capturedRequest
	c := tcClient(t, strings.TrimPrefix(f.url, "http://"))
	c.WithHttpTransport(keepRequest{&kept})
	call(c)
	if kept.method == "" {
		t.Fatal("the SDK sent nothing")
	}
	return kept
}

func (f tc3Fixture) describe(t *testing.T) capturedRequest {
	t.Helper()
	req := tckms.NewDescribeKeyRequest()
	req.KeyId = common.StringPtr(f.id)
	if _, err := f.c.DescribeKey(req); err != nil {
		t.Fatal(err)
	}
	return f.cap.lastRequest()
}

// A captured TC3 request cannot perform a state change its signer did not
// ask for, nor repeat one (issue 17, finding 5): X-TC-Action is not
// signed, so a DescribeKey's signature sent as DisableKey over another
// connection within the grace is refused, and an EnableKey replayed after
// an emergency DisableKey is refused; the key's state is what the admin
// left it in.
func TestTC3CapturedRequestChangesNoState(t *testing.T) {
	f := newTC3Fixture(t, server.Config{})
	d := f.describe(t)
	if code := f.sendAs(t, d, "DisableKey"); code != "AuthFailure.SignatureFailure" {
		t.Errorf("a DescribeKey signature sent as DisableKey at once: %q, want AuthFailure.SignatureFailure", code)
	}
	if s := f.state(t); s != provider.StateEnabled {
		t.Fatalf("the re-targeted DisableKey ran: %s", s)
	}

	dis := tckms.NewDisableKeyRequest()
	dis.KeyId = common.StringPtr(f.id)
	if _, err := f.c.DisableKey(dis); err != nil {
		t.Fatal(err)
	}
	en := tckms.NewEnableKeyRequest()
	en.KeyId = common.StringPtr(f.id)
	if _, err := f.c.EnableKey(en); err != nil {
		t.Fatal(err)
	}
	captured := f.cap.lastRequest()
	nextSecond() // the admin's emergency DisableKey: a new signature
	if _, err := f.c.DisableKey(dis); err != nil {
		t.Fatal(err)
	}
	if code := f.sendAs(t, captured, "EnableKey"); code != "AuthFailure.SignatureFailure" {
		t.Errorf("a captured EnableKey replayed after DisableKey: %q, want AuthFailure.SignatureFailure", code)
	}
	if s := f.state(t); s != provider.StateDisabled {
		t.Fatalf("the replayed EnableKey re-enabled the key: %s", s)
	}
}

// Honest TC3 clients keep working under the rule: identical reads repeat
// (from anywhere, within the window); an SDK client's DescribeKey and
// DisableKey on one KeyId in one second share a signature and pass over its
// kept-alive connection; the SDK's retry of a throttled state change (the
// same signature: the throttled try consumed no replay memory) passes.
func TestTC3HonestClientsPass(t *testing.T) {
	f := newTC3Fixture(t, server.Config{})
	d := f.describe(t)
	for i := range 2 {
		if code := f.sendAs(t, d, "DescribeKey"); code != "" {
			t.Fatalf("identical read %d from another connection: %q", i, code)
		}
	}
	nextSecond() // a signature not yet used
	d = f.signOnly(t, func(c *tckms.Client) {
		req := tckms.NewDescribeKeyRequest()
		req.KeyId = common.StringPtr(f.id)
		_, _ = c.DescribeKey(req)
	})
	if codes := f.sendOnConn(t, d, "DescribeKey", "DisableKey"); codes[0] != "" || codes[1] != "" {
		t.Fatalf("DescribeKey then DisableKey with one signature on one connection: %v", codes)
	}
	if s := f.state(t); s != provider.StateDisabled {
		t.Fatalf("after the honest DisableKey: %s", s)
	}

	// The SDK retries a throttled request as it is: the throttled tries
	// consumed no replay memory, so the same signature passes later.
	f = newTC3Fixture(t, server.Config{Rate: 0.5, Burst: 1})
	cpf := tcProfile(strings.TrimPrefix(f.url, "http://"))
	cpf.RateLimitExceededMaxRetries = 10
	cpf.RateLimitExceededRetryDuration = profile.ConstantDurationFunc(1100 * time.Millisecond)
	rc, err := tckms.NewClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", cpf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.ListKeys(tckms.NewListKeysRequest()); err != nil { // spends the token
		t.Fatal(err)
	}
	before := f.n.Load()
	dis := tckms.NewDisableKeyRequest()
	dis.KeyId = common.StringPtr(f.id)
	if _, err := rc.DisableKey(dis); err != nil {
		t.Fatalf("DisableKey retried by the SDK after RequestLimitExceeded: %v", err)
	}
	if tries := f.n.Load() - before; tries < 2 {
		t.Fatalf("DisableKey took %d request(s): it was never throttled, the retry is untested", tries)
	}
	if s := f.state(t); s != provider.StateDisabled {
		t.Fatalf("after the retried DisableKey: %s", s)
	}
}

// nextSecond waits until the wall clock enters its next second: the TC3
// timestamp has second resolution, so what the SDK signs after it carries
// a new signature.
func nextSecond() { time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) }
