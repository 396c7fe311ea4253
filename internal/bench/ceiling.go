package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider/wire"
)

// The machine's HTTP ceiling is the rate of a trivial handler (read the
// body, HMAC-SHA1 over the query and body, JSON out) served the way the
// server operations are (newHTTPServer, loopback) and called the same way
// (the lean Client, the same concurrency, the same signed requests, so of
// the same size). Each server operation is reported as a ratio of it, and
// of the ceiling combined with the in-process cost (Combined).

// HTTP timeouts of the bench's servers: `p11kms serve`'s defaults
// (--read-timeout, --write-timeout), so that the in-process server and the
// ceiling run with serve's net/http settings.
const (
	serveReadTimeout  = 10 * time.Second
	serveWriteTimeout = 30 * time.Second
)

// newHTTPServer is how the bench serves a handler: serve's net/http
// settings, on a fresh loopback port. stop closes it.
func newHTTPServer(h http.Handler) (addr string, stop func(), err error) {
	srv := &http.Server{Handler: h, ReadTimeout: serveReadTimeout, WriteTimeout: serveWriteTimeout, ReadHeaderTimeout: serveReadTimeout}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// CeilingAnswer is the trivial handler's JSON answer: the hex HMAC-SHA1,
// under the access key's secret, of the raw query followed by the body.
type CeilingAnswer struct {
	RequestId string
	HMAC      string
}

// CeilingHandler is the trivial handler: it reads the body, computes an
// HMAC-SHA1 with secret over the raw query and the body (an Alibaba
// request signs its query, a Tencent one its body) and answers JSON.
func CeilingHandler(secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, `{"Code":"BadRequest","Message":"body: unreadable"}`, http.StatusBadRequest)
			return
		}
		m := hmac.New(sha1.New, []byte(secret))
		m.Write([]byte(r.URL.RawQuery))
		m.Write(body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(CeilingAnswer{RequestId: NewNonce(), HMAC: hex.EncodeToString(m.Sum(nil))})
	})
}

// CeilingName is the name of the ceiling operation measured alongside the
// server operation named server (server:X → ceiling:X).
func CeilingName(server string) string { return "ceiling:" + strings.TrimPrefix(server, "server:") }

// CeilingOps starts the trivial handler on a loopback port and returns, for
// each server operation o.Signature can drive, its ceiling operation: the
// same signed request, by a Client like the server operations', to the
// trivial handler. stop shuts the handler's server down.
func (f *Fixture) CeilingOps(o ServerOptions) (ops map[string]Op, stop func(), err error) {
	key := wire.NewAccessKey(accessKeyPrefix(o.Signature), wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}})
	addr, stop, err := newHTTPServer(CeilingHandler(key.AccessKeySecret))
	if err != nil {
		return nil, nil, err
	}
	c := NewClient(Signer{Scheme: o.Signature, Host: addr, AccessKeyId: key.AccessKeyId, AccessKeySecret: key.AccessKeySecret},
		max(o.Concurrency, 1))
	ops = map[string]Op{}
	for name, sc := range f.serverCalls(o.Signature) {
		label := strings.Replace(sc.label, " ", " ceiling: ", 1)
		ops[CeilingName(name)] = Op{Name: label, Run: func(ctx context.Context) error { return c.Call(ctx, sc.action, sc.params) }}
	}
	return ops, stop, nil
}

// Combined is the rate of an operation that costs both an HTTP request at
// the ceiling rate and the in-process operation at its rate, both
// whole-machine rates at the same concurrency: one operation takes
// 1/ceiling of the cores' time for the HTTP work and 1/inprocess for the
// rest, so Combined = 1 / (1/ceiling + 1/inprocess). It is 0 unless both
// rates are positive.
func Combined(ceiling, inprocess float64) float64 {
	if ceiling <= 0 || inprocess <= 0 {
		return 0
	}
	return 1 / (1/ceiling + 1/inprocess)
}

// AddCeilings sets, on each server operation's result (names[i] is rs[i]),
// its ceiling's rate and the ratio to it, and — when its in-process
// operation was measured too — the Combined rate and the ratio to that.
func AddCeilings(names []string, rs []Result) {
	at := map[string]int{}
	for i, n := range names {
		at[n] = i
	}
	for _, pair := range ServerOpNames {
		s, okS := at[pair[0]]
		c, okC := at[CeilingName(pair[0])]
		if !okS || !okC || rs[c].OpsPerSec <= 0 {
			continue
		}
		r := &rs[s]
		r.CeilingOpsPerSec = rs[c].OpsPerSec
		r.CeilingRatio = r.OpsPerSec / r.CeilingOpsPerSec
		if i, ok := at[pair[1]]; ok {
			if r.CombinedOpsPerSec = Combined(r.CeilingOpsPerSec, rs[i].OpsPerSec); r.CombinedOpsPerSec > 0 {
				r.CombinedRatio = r.OpsPerSec / r.CombinedOpsPerSec
			}
		}
	}
}
