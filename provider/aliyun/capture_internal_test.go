package aliyun

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// Capture is one request the official SDKs sent (testdata/captures, see
// docs/WIRE.md, Captures): the raw request, the verdict of the
// server that captured it, and the response the SDK parsed.
type Capture struct {
	Name     string    // folder/file
	Time     time.Time // when it was sent
	Raw      []byte    // request line, headers, blank line, body
	Verdict  string    // "OK scheme=... ak=... time=... nonce=..." or "REPLAY SignatureNonceUsed"
	Status   int       // the response's HTTP status
	Response []byte    // the response body
}

// Scheme is the signature scheme the verdict names ("" for a replay).
func (c Capture) Scheme() string { return verdictField(c.Verdict, "scheme") }

// Nonce is the nonce the verdict names.
func (c Capture) Nonce() string { return verdictField(c.Verdict, "nonce") }

func verdictField(v, name string) string {
	for f := range strings.FieldsSeq(v) {
		if k, val, ok := strings.Cut(f, "="); ok && k == name {
			return val
		}
	}
	return ""
}

var captureHead = regexp.MustCompile(`^===== #\d+ (\S+)\n`)

// LoadCaptures reads every capture under testdata/captures.
func LoadCaptures(tb testing.TB) []Capture {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "captures", "ali-*", "*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no captures: %v", err)
	}
	var out []Capture
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		c, err := ParseCapture(b)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		c.Name = filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
		out = append(out, c)
	}
	return out
}

// ParseCapture splits one capture file.
func ParseCapture(b []byte) (Capture, error) {
	m := captureHead.FindSubmatch(b)
	if m == nil {
		return Capture{}, io.ErrUnexpectedEOF
	}
	t, err := time.Parse(time.RFC3339, string(m[1]))
	if err != nil {
		return Capture{}, err
	}
	rest := b[len(m[0]):]
	i := bytes.Index(rest, []byte("\n----- signature check: "))
	if i < 0 {
		return Capture{}, io.ErrUnexpectedEOF
	}
	c := Capture{Time: t, Raw: rest[:i]}
	tail := string(rest[i+len("\n----- signature check: "):])
	verdict, tail, _ := strings.Cut(tail, "\n")
	c.Verdict = verdict
	if st, ok := strings.CutPrefix(tail, "----- response HTTP "); ok {
		code, body, _ := strings.Cut(st, "\n")
		c.Status, _ = strconv.Atoi(code)
		c.Response = []byte(strings.TrimSpace(body))
	}
	return c, nil
}

// ReadRawRequest parses a raw HTTP/1.1 request as a server would receive it.
func ReadRawRequest(raw []byte) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
}

// testKeys are the access keys of docs/WIRE.md.
func testKeys() *wire.AccessKeys {
	return wire.NewAccessKeys(wire.AccessKey{AccessKeyId: "LTAI5tTestAccessKeyId01",
		AccessKeySecret: "TestAccessKeySecretForLocalKMS0001", Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
}

// verifyRaw runs the parser and the signature check on a raw request, as
// the handler does.
func verifyRaw(v *verifier, raw []byte, now time.Time, maxBody int64) (*authResult, error) {
	r, err := ReadRawRequest(raw)
	if err != nil {
		return nil, err
	}
	h := &handler{cfg: Config{MaxBodyBytes: maxBody}, v: *v}
	return h.authenticate(wire.NewRequest(r, maxBody), &wire.Record{}, now)
}

// Every captured request verifies at its time, with the scheme, access key
// and nonce the capturing server saw; the replayed one verifies too (its
// refusal is the nonce memory's job).
func TestCaptureSignatures(t *testing.T) {
	v := &verifier{keys: testKeys()}
	seen := map[string]int{}
	for _, c := range LoadCaptures(t) {
		a, err := verifyRaw(v, c.Raw, c.Time, DefaultMaxBodyBytes)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if s := c.Scheme(); s != "" && (a.Scheme != s || a.Nonce != c.Nonce()) {
			t.Errorf("%s: scheme %s nonce %s, want %s %s", c.Name, a.Scheme, a.Nonce, s, c.Nonce())
		}
		if a.AccessKey.AccessKeyId != "LTAI5tTestAccessKeyId01" || !a.Time.Equal(c.Time) {
			t.Errorf("%s: access key %s time %s", c.Name, a.AccessKey.AccessKeyId, a.Time)
		}
		if _, ok := actionSpecs[a.Action]; !ok {
			t.Errorf("%s: action %q", c.Name, a.Action)
		}
		// The parameters decode into the provider's request.
		if _, err := decodeParams(actionSpecs[a.Action], a.Params); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
		seen[a.Scheme]++
	}
	for _, s := range []string{SchemeACS3, SchemeACS4, SchemeRPC} {
		if seen[s] == 0 {
			t.Errorf("no capture verified with %s", s)
		}
	}
	t.Logf("verified: %v", seen)
}

// The clock decides: 15 minutes either way is accepted, a second more is not.
func TestCaptureTimeWindow(t *testing.T) {
	v := &verifier{keys: testKeys()}
	for _, c := range LoadCaptures(t)[:1] {
		for _, d := range []time.Duration{-MaxClockSkew, MaxClockSkew} {
			if _, err := verifyRaw(v, c.Raw, c.Time.Add(d), DefaultMaxBodyBytes); err != nil {
				t.Errorf("%s at %v: %v", c.Name, d, err)
			}
		}
		for _, d := range []time.Duration{-MaxClockSkew - time.Second, MaxClockSkew + time.Second, 24 * time.Hour} {
			_, err := verifyRaw(v, c.Raw, c.Time.Add(d), DefaultMaxBodyBytes)
			if provider.ErrorCode(err) != CodeTimestampExpired {
				t.Errorf("%s at %v: %v, want %s", c.Name, d, err, CodeTimestampExpired)
			}
		}
	}
}

// signedSpans returns the byte ranges of a raw request that its signature
// covers: the query string, and for ACS3/ACS4 the values of the signed
// headers and of Authorization.
func signedSpans(raw []byte) (spans [][2]int, unsigned [][2]int) {
	lines := bytes.SplitAfter(raw, []byte("\r\n"))
	off := 0
	var signed map[string]bool
	for i, l := range lines {
		line := string(bytes.TrimRight(l, "\r\n"))
		if i == 0 {
			q := strings.Index(line, "?")
			sp := strings.LastIndex(line, " ")
			if q >= 0 && sp > q {
				spans = append(spans, [2]int{off + q + 1, off + sp})
			}
		} else if name, val, ok := strings.Cut(line, ": "); ok && strings.EqualFold(name, "Authorization") {
			_, rest, _ := strings.Cut(val, " ")
			if p, err := parseAuthorization(rest); err == nil {
				signed = map[string]bool{}
				for h := range strings.SplitSeq(p.SignedHeaders, ";") {
					signed[h] = true
				}
			}
		}
		off += len(l)
	}
	// Second pass, now that the signed headers are known.
	off = 0
	for i, l := range lines {
		line := string(bytes.TrimRight(l, "\r\n"))
		if i > 0 {
			if name, _, ok := strings.Cut(line, ": "); ok {
				span := [2]int{off + len(name) + 2, off + len(line)}
				lname := strings.ToLower(name)
				if lname == "authorization" || signed[lname] {
					spans = append(spans, span)
				} else if lname == "user-agent" || lname == "accept-encoding" {
					unsigned = append(unsigned, span)
				}
			}
		}
		off += len(l)
	}
	return spans, unsigned
}

// mutate changes an ASCII letter or digit to another of its kind.
func mutate(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '8', c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
		return c + 1, true
	case c == '9':
		return '0', true
	case c == 'z':
		return 'a', true
	case c == 'Z':
		return 'A', true
	}
	return c, false
}

// Changing any one letter or digit that the signature covers (query
// string, signed header values, Authorization) makes every captured request
// fail; changing an unsigned header does not.
func TestCaptureOneByteChange(t *testing.T) {
	v := &verifier{keys: testKeys()}
	total := 0
	for _, c := range LoadCaptures(t) {
		spans, unsigned := signedSpans(c.Raw)
		if len(spans) == 0 {
			t.Fatalf("%s: nothing signed found", c.Name)
		}
		buf := bytes.Clone(c.Raw)
		for _, sp := range spans {
			for i := sp[0]; i < sp[1]; i++ {
				m, ok := mutate(c.Raw[i])
				if !ok {
					continue
				}
				buf[i] = m
				if a, err := verifyRaw(v, buf, c.Time, DefaultMaxBodyBytes); err == nil {
					t.Errorf("%s: changing byte %d (%q→%q) still verifies as %s", c.Name, i, c.Raw[i], m, a.Action)
				}
				buf[i] = c.Raw[i]
				total++
			}
		}
		for _, sp := range unsigned {
			for i := sp[0]; i < sp[1]; i++ {
				if m, ok := mutate(c.Raw[i]); ok {
					buf[i] = m
					if _, err := verifyRaw(v, buf, c.Time, DefaultMaxBodyBytes); err != nil {
						t.Errorf("%s: changing unsigned byte %d: %v", c.Name, i, err)
					}
					buf[i] = c.Raw[i]
				}
			}
		}
	}
	t.Logf("%d one-byte changes refused", total)
}

// The unsigned X-Acs-Action header of an RPC request does not choose the
// action: the signed Action parameter does.
func TestRPCActionFromSignedParameter(t *testing.T) {
	v := &verifier{keys: testKeys()}
	for _, c := range LoadCaptures(t) {
		if c.Scheme() != SchemeRPC {
			continue
		}
		r, _ := ReadRawRequest(c.Raw)
		want := r.URL.Query().Get("Action")
		raw := bytes.Replace(c.Raw, []byte("X-Acs-Action: "+want), []byte("X-Acs-Action: DisableKey"), 1)
		a, err := verifyRaw(v, raw, c.Time, DefaultMaxBodyBytes)
		if err != nil || a.Action != want {
			t.Fatalf("%s: %v, action %v", c.Name, err, a)
		}
	}
}

// A request larger than MaxBodyBytes (query and body together) is refused
// before anything is parsed.
func TestRequestTooLarge(t *testing.T) {
	c := LoadCaptures(t)[3]
	v := &verifier{keys: testKeys()}
	r, _ := ReadRawRequest(c.Raw)
	limit := int64(len(r.URL.RawQuery))
	if _, err := verifyRaw(v, c.Raw, c.Time, limit); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := verifyRaw(v, c.Raw, c.Time, limit-1)
	if e := provider.AsError(err); e == nil || e.HTTPStatus != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit: %v", err)
	}
}
