package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// countingBody is a request body of unknown length that counts the bytes
// taken from it.
type countingBody struct {
	r    *strings.Reader
	read int
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func (c *countingBody) Close() error { return nil }

// A form POST without Tencent headers is routed by its body: the router
// reads that body once, bounded by MaxBodyBytes (not 1 MiB), and the
// dialect does not read it again. Over the limit the router cannot see
// the body's SecretId, so the request is answered as Alibaba's (413).
func TestRoutingReadsTheBodyOnceWithinMaxBody(t *testing.T) {
	tok := softhsmtest.New(t)
	const max = 4 << 10
	srv := server.New(server.Config{KMS: provider.New(tok.Token, provider.Options{}),
		Keys: wire.NewAccessKeys(), MaxBodyBytes: max})
	for _, c := range []struct {
		name, body string
		wantCode   string
	}{
		{"v1 form within the limit", "Action=Decrypt&SecretId=AKIDnobody&Nonce=1", `"Code":"MissingParameter","Message":"the parameter Signature is required"`},
		{"form over the limit", "SecretId=AKIDnobody&Pad=" + strings.Repeat("a", 1<<20), `"Code":"InvalidParameter"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := &countingBody{r: strings.NewReader(c.body)}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body, r.ContentLength = body, -1
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if body.read > max+1 {
				t.Errorf("%d bytes read from the body; the limit is %d", body.read, max)
			}
			if len(c.body) <= max && body.read != len(c.body) {
				t.Errorf("%d of %d bytes read", body.read, len(c.body))
			}
			if !strings.Contains(w.Body.String(), c.wantCode) {
				t.Errorf("answer %d %s, want code %s", w.Code, w.Body, c.wantCode)
			}
		})
	}
}
