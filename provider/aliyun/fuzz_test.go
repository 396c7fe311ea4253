package aliyun

import (
	"bytes"
	"errors"
	"flag"
	"github.com/p11kms/p11kms/provider/wire"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzVerify from testdata/captures")

// fuzzTime lies within 15 minutes of every capture.
var fuzzTime = time.Date(2026, 11, 23, 6, 1, 48, 0, time.UTC)

// seedName is the corpus file name of a capture.
func seedName(c Capture) string {
	return strings.TrimSuffix(strings.ReplaceAll(c.Name, "/", "-"), ".txt")
}

// The fuzz corpus holds every capture (go test -run TestFuzzSeeds
// -update-fuzz-seeds rewrites them).
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	for _, c := range LoadCaptures(t) {
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(c.Raw)) + ")\n"
		file := filepath.Join(dir, seedName(c))
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file)
		if err != nil || string(got) != want {
			t.Errorf("%s: missing or stale seed (run with -update-fuzz-seeds): %v", file, err)
		}
	}
}

// checkWireError: every refusal of the parser and the verifier is a client
// error with a code and a message.
func checkWireError(t *testing.T, err error) {
	t.Helper()
	var e *provider.Error
	if !errors.As(err, &e) {
		t.Fatalf("not a wire error: %T %v", err, err)
	}
	if e.Code == "" || e.Message == "" || e.HTTPStatus < 400 || e.HTTPStatus > 499 {
		t.Fatalf("error %+v", e)
	}
}

// FuzzVerify feeds raw HTTP requests to the request parser, the parameter
// decoders of every action and the signature verifier (ACS3, ACS4, RPC),
// with the captures' access key and a clock within their window. Nothing
// may panic; every refusal is a 4xx wire error; an accepted request is
// signed by the test key and verifies the same way twice, and a one-bit
// change to its signature is refused.
func FuzzVerify(f *testing.F) {
	v := &verifier{keys: testKeys()}
	h := &handler{cfg: Config{MaxBodyBytes: DefaultMaxBodyBytes}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ReadRawRequest(raw)
		if err != nil {
			return
		}
		req := wire.NewRequest(r, h.cfg.MaxBodyBytes)
		body, err := h.readBody(req)
		if err != nil {
			checkWireError(t, err)
			return
		}
		rr, err := parseRaw(req, body)
		if err != nil {
			checkWireError(t, err)
			return
		}
		for _, s := range actionSpecs {
			if _, err := decodeParams(s, rr.All); err != nil {
				checkWireError(t, err)
			}
		}
		claimedAccessKeyId(r, rr)
		a, err := v.verify(r, rr, body, fuzzTime)
		if err != nil {
			checkWireError(t, err)
			return
		}
		if a.AccessKey.AccessKeyId != "LTAI5tTestAccessKeyId01" || a.Nonce == "" || a.Action == "" {
			t.Fatalf("accepted %+v", a)
		}
		b, err := v.verify(r, rr, body, fuzzTime)
		if err != nil || b.Action != a.Action || b.Nonce != a.Nonce || b.Scheme != a.Scheme {
			t.Fatalf("verified differently the second time: %v", err)
		}
		// Flip one bit of the signature: refused.
		var tampered []byte
		if a.Scheme == SchemeRPC {
			sig := rr.All["Signature"]
			s := []byte(sig)
			s[0] ^= 1
			tampered = bytes.Replace(raw, []byte("Signature="+escapeForTest(sig)), []byte("Signature="+escapeForTest(string(s))), 1)
		} else {
			i := bytes.Index(raw, []byte("Signature="))
			if i < 0 {
				return
			}
			tampered = bytes.Clone(raw)
			tampered[i+len("Signature=")] ^= 1
		}
		if bytes.Equal(tampered, raw) {
			return
		}
		if r2, err := ReadRawRequest(tampered); err == nil {
			req2 := wire.NewRequest(r2, h.cfg.MaxBodyBytes)
			if body2, err := h.readBody(req2); err == nil {
				if rr2, err := parseRaw(req2, body2); err == nil {
					if _, err := v.verify(r2, rr2, body2, fuzzTime); err == nil {
						t.Fatalf("a tampered signature verifies")
					}
				}
			}
		}
	})
}

// escapeForTest is how the SDKs put a base64 signature in a query string.
func escapeForTest(s string) string {
	return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(s)
}
