package aliyun_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/aliyun"
	"github.com/p11kms/p11kms/provider/wire"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

// The test credentials of docs/WIRE.md, with which the captures were signed.
const (
	testAK     = "LTAI5tTestAccessKeyId01"
	testSecret = "TestAccessKeySecretForLocalKMS0001"
	// A second key whose policy allows only some actions on some keys.
	limitedAK     = "LTAI5tLimitedAccessKey02"
	limitedSecret = "LimitedAccessKeySecretForLocalKMS2"
)

// clock is the server's clock: real time plus a settable offset, since the
// SDKs stamp requests with the real time.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Set(d time.Duration) { c.offset.Store(int64(d)) }
func (c *clock) SetTo(t time.Time)   { c.offset.Store(int64(time.Until(t))) }

// records collects the observer's records.
type records struct {
	mu  sync.Mutex
	all []wire.Record
}

func (r *records) Observe(rec wire.Record) { r.mu.Lock(); r.all = append(r.all, rec); r.mu.Unlock() }

func (r *records) last() wire.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.all) == 0 {
		return wire.Record{}
	}
	return r.all[len(r.all)-1]
}

// counter counts records.
type counter struct{ n atomic.Int64 }

func (c *counter) Observe(wire.Record) { c.n.Add(1) }

// limiter refuses while refuse is set.
type limiter struct{ refuse atomic.Bool }

func (l *limiter) Allow(context.Context, string) (bool, error) { return !l.refuse.Load(), nil }

// exchange is one raw request and response seen by the test server.
type exchange struct {
	Request  []byte // the request as sent (request line, headers, body)
	Status   int
	Header   http.Header
	Response []byte
}

// testEnv is a KMS over a fresh SoftHSM2 token behind the handler, on a
// loopback httptest server that also keeps every exchange.
type testEnv struct {
	kms   *provider.Service
	srv   *httptest.Server
	addr  string
	clock *clock
	obs   *records
	lim   *limiter

	mu        sync.Mutex
	exchanges []exchange
}

func newEnv(t testing.TB) *testEnv { return newEnvWith(t, true) }

// newEnvWith builds the environment; without keep (benchmarks) the server
// runs the bare handler and the observer only counts.
func newEnvWith(t testing.TB, keep bool) *testEnv {
	t.Helper()
	tok := softhsmtest.New(t)
	e := &testEnv{kms: provider.New(tok.Token, provider.Options{}), clock: &clock{}, obs: &records{}, lim: &limiter{}}
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: testAK, AccessKeySecret: testSecret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}},
		wire.AccessKey{AccessKeyId: limitedAK, AccessKeySecret: limitedSecret, Policy: wire.Policy{
			Actions: []string{"GenerateDataKey", "Decrypt", "DescribeKey"}, Keys: []string{"alias/allowed"}}},
	)
	var obs wire.Observer = e.obs
	if !keep {
		obs = &counter{}
	}
	h := aliyun.New(aliyun.Config{KMS: e.kms, Keys: keys, Observer: obs, Limiter: e.lim, Now: e.clock.Now})
	if keep {
		h = e.keep(h)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	e.addr = strings.TrimPrefix(e.srv.URL, "http://")
	return e
}

// keep records each exchange (for replays and response checks).
func (e *testEnv) keep(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var raw bytes.Buffer
		raw.WriteString(r.Method + " " + r.RequestURI + " HTTP/1.1\r\nHost: " + r.Host + "\r\n")
		r.Header.Write(&raw)
		raw.WriteString("\r\n")
		raw.Write(body)
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, r)
		for k, v := range rw.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rw.Code)
		w.Write(rw.Body.Bytes())
		e.mu.Lock()
		e.exchanges = append(e.exchanges, exchange{Request: raw.Bytes(), Status: rw.Code, Header: rw.Header().Clone(), Response: rw.Body.Bytes()})
		e.mu.Unlock()
	})
}

func (e *testEnv) lastExchange() exchange {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exchanges[len(e.exchanges)-1]
}

// send writes a raw request to the server and returns the response.
func (e *testEnv) send(t testing.TB, raw []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := aliyun.ReadRawRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Scheme, req.URL.Host, req.RequestURI = "http", e.addr, ""
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
