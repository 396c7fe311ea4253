package wire_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider/wire"
)

// bodyRequest is a POST whose body is b, with the given declared length
// (-1: unknown, as for a chunked body).
func bodyRequest(b []byte, length int64) *http.Request {
	return &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/"}, Header: http.Header{},
		Body: io.NopCloser(bytes.NewReader(b)), ContentLength: length}
}

// TestBodyReadsADeclaredLengthInOneBuffer: a body of declared length is
// read into one buffer of that size (io.ReadAll's growing copies made
// several allocations per request for a 3 KiB body), and a body of unknown
// length, shorter than declared or over the limit is still answered as
// before.
func TestBodyReadsADeclaredLengthInOneBuffer(t *testing.T) {
	body := bytes.Repeat([]byte("a=b&"), 768) // 3 KiB
	rd := bytes.NewReader(body)
	r := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/"}, Header: http.Header{},
		Body: io.NopCloser(rd), ContentLength: int64(len(body))}
	allocs := testing.AllocsPerRun(50, func() {
		rd.Reset(body)
		b, err := wire.NewRequest(r, 64<<10).Body()
		if err != nil || len(b) != len(body) {
			t.Fatalf("Body: %d bytes, %v", len(b), err)
		}
	})
	if allocs > 2 { // the Request and the one buffer
		t.Errorf("Body of a declared 3 KiB: %.0f allocations a request, want at most 2", allocs)
	}

	for _, c := range []struct {
		name   string
		body   string
		length int64
		max    int64
		want   string
		err    error
	}{
		{"declared", "x=1", 3, 100, "x=1", nil},
		{"unknown length", "x=1", -1, 100, "x=1", nil},
		{"unknown length over the limit", strings.Repeat("x", 101), -1, 100, "", wire.ErrTooLarge},
		{"declared over the limit", strings.Repeat("x", 101), 101, 100, "", wire.ErrTooLarge},
		{"shorter than declared", "x=1", 10, 100, "", wire.ErrUnreadable},
		{"empty", "", 0, 100, "", nil},
	} {
		b, err := wire.NewRequest(bodyRequest([]byte(c.body), c.length), c.max).Body()
		if !errors.Is(err, c.err) || string(b) != c.want {
			t.Errorf("%s: Body = %q, %v; want %q, %v", c.name, b, err, c.want, c.err)
		}
	}
}
