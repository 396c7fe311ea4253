package bench

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// luaStrings are the string literals of a script written by luaQuote, in
// order, decoded.
func luaStrings(t *testing.T, script string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, lit := range regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(script, -1) {
		var b []byte
		s := lit[1]
		for i := 0; i < len(s); i++ {
			if s[i] != '\\' {
				b = append(b, s[i])
				continue
			}
			i++
			switch s[i] {
			case 'r':
				b = append(b, '\r')
			case 'n':
				b = append(b, '\n')
			case '"', '\\':
				b = append(b, s[i])
			default:
				n, err := strconv.Atoi(s[i : i+3])
				if err != nil {
					t.Fatalf("escape %q: %v", s[i:i+3], err)
				}
				b = append(b, byte(n))
				i += 2
			}
		}
		out = append(out, b)
	}
	return out
}

// send writes one raw request to the server and reads the answer.
func send(t *testing.T, srv *httptest.Server, raw []byte) (int, []byte) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("not an HTTP request: %v\n%q", err, raw)
	}
	req.RequestURI, req.URL.Scheme, req.URL.Host = "", "http", strings.TrimPrefix(srv.URL, "http://")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// --emit's wrk script holds n raw requests, each accepted by the real
// server once: an Alibaba one sent again is a nonce replay (each carries a
// fresh nonce), and the one idle request is /healthz.
func TestEmitWrkRequestsAccepted(t *testing.T) {
	fx := newTestFixture(t)
	key := wire.NewAccessKey("LTAI", wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}})
	srv := httptest.NewServer(server.New(server.Config{KMS: fx.KMS, Keys: wire.NewAccessKeys(key)}))
	defer srv.Close()
	const n = 3
	for _, sig := range Signatures {
		for _, op := range ServerOpsFor(sig) {
			s := Signer{Scheme: sig, Host: strings.TrimPrefix(srv.URL, "http://"), AccessKeyId: key.AccessKeyId, AccessKeySecret: key.AccessKeySecret}
			var script bytes.Buffer
			if err := fx.EmitWrk(&script, op, s, n); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(script.String(), "function request()") {
				t.Fatalf("%s %s: no request hook:\n%s", sig, op, script.String())
			}
			lits := luaStrings(t, script.String())
			var reqs [][]byte
			idle := 0
			for _, l := range lits {
				if bytes.HasPrefix(l, []byte("GET /healthz HTTP/1.1\r\n")) {
					idle++
				}
				if bytes.HasPrefix(l, []byte("POST / HTTP/1.1\r\n")) || bytes.HasPrefix(l, []byte("POST /?")) {
					reqs = append(reqs, l)
				}
			}
			if len(reqs) != n || idle != 1 {
				t.Fatalf("%s %s: %d requests and %d idle ones, want %d and 1:\n%s", sig, op, len(reqs), idle, n, script.String())
			}
			for i, raw := range reqs {
				status, body := send(t, srv, raw)
				if err := responseError(sig, status, body); err != nil {
					t.Fatalf("%s %s: request %d: %v", sig, op, i, err)
				}
			}
			if sig != SignatureTC3 {
				if status, body := send(t, srv, reqs[0]); !bytes.Contains(body, []byte("SignatureNonceUsed")) {
					t.Fatalf("%s %s: the first request sent again: HTTP %d %s, want SignatureNonceUsed", sig, op, status, body)
				}
			}
		}
	}
	var sink bytes.Buffer
	if err := fx.EmitWrk(&sink, "server:GenerateAndExportDataKey-RSA", Signer{Scheme: SignatureTC3}, 1); err == nil ||
		!strings.Contains(err.Error(), "accepted server:GenerateDataKey, server:Decrypt") {
		t.Fatalf("a Tencent GenerateAndExportDataKey: %v", err)
	}
}
