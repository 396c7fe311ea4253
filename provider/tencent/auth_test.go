package tencent

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider/wire"
)

// The credentials the captures were signed with (docs/WIRE.md).
const (
	captureSecretID  = "AKIDTestSecretId0000000000000000000001"
	captureSecretKey = "TestSecretKeyForLocalKMS000000001"
)

// capture is one request the official SDK sent.
type capture struct {
	name string
	raw  []byte // the HTTP request as sent
	when time.Time
}

// loadCaptures reads testdata/captures/<dir>/*.txt: a "===== #n time" line,
// the raw request, then "----- signature check" and the response.
func loadCaptures(t testing.TB, dir string) []capture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "captures", dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in %s: %v", dir, err)
	}
	var out []capture
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, rest, _ := bytes.Cut(b, []byte("\n"))
		fields := strings.Fields(string(first))
		when, err := time.Parse(time.RFC3339, fields[len(fields)-1])
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		req, _, ok := bytes.Cut(rest, []byte("\n----- signature check"))
		if !ok {
			t.Fatalf("%s: no signature check line", f)
		}
		out = append(out, capture{name: dir + "/" + filepath.Base(f), raw: req, when: when})
	}
	return out
}

// readRequest rebuilds the http.Request and its body from raw bytes.
func readRequest(raw []byte) (*http.Request, []byte, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, err
	}
	return r, body, nil
}

func captureKeys() *wire.AccessKeys {
	return wire.NewAccessKeys(wire.AccessKey{AccessKeyId: captureSecretID, AccessKeySecret: captureSecretKey,
		Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
}

// authOnly is a handler for signature tests (no KMS needed).
func authOnly(now time.Time) *handler {
	return newHandler(Config{Keys: captureKeys(), Now: func() time.Time { return now }})
}

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	c, _ := codeAndMessage(err)
	return c
}

func TestTC3DocumentedExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tc3_hmac_sha256_example.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		SecretID               string `json:"secretId"`
		SecretKey              string `json:"secretKey"`
		Method, Host, Service  string
		Timestamp              int64
		Date, ContentType      string
		Payload                string
		HashedRequestPayload   string
		CanonicalRequest       string
		HashedCanonicalRequest string
		StringToSign           string
		Signature              string
		Authorization          string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if got := sha256Hex([]byte(v.Payload)); got != v.HashedRequestPayload {
		t.Fatalf("payload hash %s, want %s", got, v.HashedRequestPayload)
	}
	canon := tc3CanonicalRequest(v.Method, "/", "", [][2]string{{"content-type", v.ContentType}, {"host", v.Host}},
		"content-type;host", v.HashedRequestPayload)
	if canon != v.CanonicalRequest {
		t.Fatalf("canonical request\n%q\nwant\n%q", canon, v.CanonicalRequest)
	}
	if got := sha256Hex([]byte(canon)); got != v.HashedCanonicalRequest {
		t.Fatalf("hashed canonical request %s, want %s", got, v.HashedCanonicalRequest)
	}
	if got := time.Unix(v.Timestamp, 0).UTC().Format("2006-01-02"); got != v.Date {
		t.Fatalf("date %s, want %s", got, v.Date)
	}
	sts := tc3StringToSign("1551113065", v.Date+"/"+v.Service+"/tc3_request", canon)
	if sts != v.StringToSign {
		t.Fatalf("string to sign\n%q\nwant\n%q", sts, v.StringToSign)
	}
	sig := hex.EncodeToString(hmacSum(sha256.New, tc3SigningKey(v.SecretKey, v.Date, v.Service), sts))
	if sig != v.Signature {
		t.Fatalf("signature %s, want %s", sig, v.Signature)
	}
	a, err := parseTC3Authorization(v.Authorization)
	if err != nil || a.secretID != v.SecretID || hex.EncodeToString(a.signature) != v.Signature || a.service != "cvm" {
		t.Fatalf("parse %q: %+v %v", v.Authorization, a, err)
	}
}

// TestCapturesVerify: every request the SDK sent verifies at its time;
// a one-byte change to anything signed is refused.
func TestCapturesVerify(t *testing.T) {
	for _, dir := range []string{"tc3", "tcv1"} {
		for _, c := range loadCaptures(t, dir) {
			t.Run(c.name, func(t *testing.T) {
				r, body, err := readRequest(c.raw)
				if err != nil {
					t.Fatal(err)
				}
				h := authOnly(c.when)
				p, err := h.authenticate(r, body, c.when)
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.secretID != captureSecretID || p.version != APIVersion || p.action == "" {
					t.Fatalf("parsed %+v", p)
				}
				wantScheme := SchemeTC3
				if dir == "tcv1" {
					wantScheme = map[string]string{"GET": SchemeV1SHA1, "POST": SchemeV1SHA256}[r.Method]
				}
				if p.scheme != wantScheme {
					t.Fatalf("scheme %s, want %s", p.scheme, wantScheme)
				}
				// The same request decodes into its action's parameters.
				a := actions[p.action]
				req := a.New()
				if p.isJSON {
					err = decodeJSON(p.json, req)
				} else {
					err = decodeFlat(p.flat, req)
				}
				if err != nil {
					t.Fatalf("decode %s: %v", p.action, err)
				}
				// Later than the window: expired.
				late := c.when.Add(TimestampWindow + time.Second)
				r, body, _ = readRequest(c.raw)
				if _, err := authOnly(late).authenticate(r, body, late); codeOf(err) != CodeSignatureExpire {
					t.Fatalf("after the window: %v", err)
				}
				oneByteChanges(t, c, dir)
			})
		}
	}
}

// oneByteChanges flips one bit in each byte of the signed parts of a
// capture and checks every variant is refused.
func oneByteChanges(t *testing.T, c capture, dir string) {
	t.Helper()
	r0, body0, _ := readRequest(c.raw)
	type variant struct {
		what   string
		mutate func(r *http.Request, body []byte) []byte
	}
	var vs []variant
	for i := range body0 {
		vs = append(vs, variant{"body", func(r *http.Request, b []byte) []byte { b[i] ^= 1; return b }})
	}
	for i := range len(r0.URL.RawQuery) {
		vs = append(vs, variant{"query", func(r *http.Request, b []byte) []byte {
			q := []byte(r.URL.RawQuery)
			q[i] ^= 1
			r.URL.RawQuery = string(q)
			return b
		}})
	}
	for i := range len(r0.Host) {
		vs = append(vs, variant{"host", func(r *http.Request, b []byte) []byte {
			h := []byte(r.Host)
			h[i] ^= 1
			r.Host = string(h)
			return b
		}})
	}
	if dir == "tc3" {
		vs = append(vs,
			variant{"timestamp", func(r *http.Request, b []byte) []byte {
				ts := []byte(r.Header.Get("X-TC-Timestamp"))
				ts[len(ts)-1] ^= 1
				r.Header.Set("X-TC-Timestamp", string(ts))
				return b
			}},
			variant{"content-type", func(r *http.Request, b []byte) []byte {
				ct := []byte(r.Header.Get("Content-Type"))
				ct[len(ct)-1] ^= 1
				r.Header.Set("Content-Type", string(ct))
				return b
			}},
			variant{"method", func(r *http.Request, b []byte) []byte {
				if r.Method == "GET" {
					r.Method = "POST"
				} else {
					r.Method = "GET"
				}
				return b
			}})
		auth := r0.Header.Get("Authorization")
		for i := strings.Index(auth, "Signature=") + len("Signature="); i < len(auth); i++ {
			vs = append(vs, variant{"signature", func(r *http.Request, b []byte) []byte {
				a := []byte(auth)
				a[i] ^= 1
				r.Header.Set("Authorization", string(a))
				return b
			}})
		}
	}
	for _, v := range vs {
		r, body, _ := readRequest(c.raw)
		body = v.mutate(r, body)
		_, err := authOnly(c.when).authenticate(r, body, c.when)
		if err == nil {
			t.Fatalf("%s changed by one byte: accepted", v.what)
		}
		if dir == "tc3" && (v.what == "body" || v.what == "query" || v.what == "host") && codeOf(err) != CodeSignatureFailure {
			t.Fatalf("%s changed by one byte: %v, want %s", v.what, err, CodeSignatureFailure)
		}
	}
}

func TestTC3SignatureReuse(t *testing.T) {
	caps := loadCaptures(t, "tc3")
	byName := map[string]capture{}
	for _, c := range caps {
		byName[filepath.Base(c.name)] = c
	}
	c := byName["002-GenerateDataKey.txt"]
	h := authOnly(c.when)
	send := func(raw []byte, at time.Duration, edit func(r *http.Request)) error {
		r, body, err := readRequest(raw)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(r)
		}
		_, err = h.authenticate(r, body, c.when.Add(at))
		return err
	}
	// 002 and 019 are two honest identical calls in one second: both pass,
	// and so do 017 and 018, and so do repeats later in the window.
	for _, name := range []string{"002-GenerateDataKey.txt", "019-GenerateDataKey.txt", "017-GenerateDataKey.txt", "018-GenerateDataKey.txt"} {
		if err := send(byName[name].raw, 0, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := send(c.raw, TimestampWindow, nil); err != nil {
		t.Fatal(err)
	}
	edits := []func(r *http.Request){
		func(r *http.Request) { r.Header.Set("X-TC-Action", "Decrypt") },
		func(r *http.Request) { r.Header.Set("X-TC-Region", "ap-shanghai") },
		func(r *http.Request) { r.Header.Set("X-TC-Version", "2017-03-12") },
	}
	// Within RetargetGrace of the first use another target passes: an
	// honest client may send DescribeKey and DisableKey on one KeyId in one
	// second, with one signature.
	for _, edit := range edits {
		if err := send(c.raw, RetargetGrace, edit); err != nil {
			t.Fatalf("re-targeted within the grace: %v", err)
		}
	}
	// After twice the grace a new target is refused (the targets used within it
	// are reads: they repeat).
	for _, edit := range []func(r *http.Request){
		func(r *http.Request) { r.Header.Set("X-TC-Action", "Encrypt") },
		func(r *http.Request) { r.Header.Set("X-TC-Region", "ap-beijing") },
		func(r *http.Request) { r.Header.Set("X-TC-Version", "2018-01-01") },
		func(r *http.Request) { r.Header.Set("X-TC-Action", "DisableKey") },
	} {
		if err := send(c.raw, 2*RetargetGrace+time.Millisecond, edit); codeOf(err) != CodeSignatureFailure {
			t.Fatalf("re-targeted signature: %v", err)
		}
	}
	for _, edit := range edits {
		if err := send(c.raw, RetargetGrace+time.Millisecond, edit); err != nil {
			t.Fatalf("a read target used within the grace, repeated: %v", err)
		}
	}
	// The original target still passes.
	if err := send(c.raw, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	// A fresh handler has not seen it: the first use decides the target.
	h = authOnly(c.when)
	if err := send(c.raw, 0, edits[0]); err != nil {
		t.Fatal(err)
	}
	if err := send(c.raw, 3*time.Second, nil); codeOf(err) != CodeSignatureFailure {
		t.Fatalf("second target: %v", err)
	}
	// Past the window it is expired whatever the target.
	if err := send(c.raw, TimestampWindow+time.Second, nil); codeOf(err) != CodeSignatureExpire {
		t.Fatalf("later: %v", err)
	}
}

func TestV1NonceReplay(t *testing.T) {
	for _, c := range loadCaptures(t, "tcv1") {
		h := authOnly(c.when)
		r, body, _ := readRequest(c.raw)
		if _, err := h.authenticate(r, body, c.when); err != nil {
			t.Fatal(err)
		}
		r, body, _ = readRequest(c.raw)
		if _, err := h.authenticate(r, body, c.when.Add(time.Second)); codeOf(err) != CodeSignatureExpire {
			t.Fatalf("%s replayed: %v", c.name, err)
		}
	}
}

func TestAuthErrors(t *testing.T) {
	c := loadCaptures(t, "tc3")[0]
	cases := []struct {
		name string
		edit func(r *http.Request)
		code string
	}{
		{"unknown SecretId", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), captureSecretID, "AKIDnobody", 1))
		}, CodeSecretIdNotFound},
		{"no authorization", func(r *http.Request) { r.Header.Del("Authorization") }, CodeInvalidAuthorization},
		{"other algorithm", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "TC3-HMAC-SHA256", "TC3-HMAC-SHA1", 1))
		}, CodeInvalidAuthorization},
		{"host unsigned", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "content-type;host", "content-type", 1))
		}, CodeInvalidAuthorization},
		{"other service", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/kms/", "/cvm/", 1))
		}, CodeSignatureFailure},
		{"other date", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "2026-11-23", "2026-11-24", 1))
		}, CodeSignatureFailure},
		{"no action", func(r *http.Request) { r.Header.Del("X-TC-Action") }, CodeMissingParameter},
		{"no timestamp", func(r *http.Request) { r.Header.Del("X-TC-Timestamp") }, CodeMissingParameter},
		{"token", func(r *http.Request) { r.Header.Set("X-TC-Token", "t") }, CodeTokenFailure},
		{"unsigned payload", func(r *http.Request) { r.Header.Set("X-TC-Content-SHA256", "UNSIGNED-PAYLOAD") }, CodeSignatureFailure},
		{"method", func(r *http.Request) { r.Method = "PUT" }, CodeUnsupportedProtocol},
		{"query on POST", func(r *http.Request) { r.URL.RawQuery = "KeyId=x" }, CodeInvalidParameter},
	}
	for _, tc := range cases {
		r, body, _ := readRequest(c.raw)
		tc.edit(r)
		if _, err := authOnly(c.when).authenticate(r, body, c.when); codeOf(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}

// signTC3 signs r as the documentation describes, over the named headers
// (values lower-cased when lower is set).
func signTC3(r *http.Request, body []byte, signed []string, lower bool) {
	ts := r.Header.Get("X-TC-Timestamp")
	var sec int64
	for _, c := range ts {
		sec = sec*10 + int64(c-'0')
	}
	date := time.Unix(sec, 0).UTC().Format("2006-01-02")
	var hs [][2]string
	for _, name := range signed {
		v := r.Host
		if name != "host" {
			v = r.Header.Get(name)
		}
		if lower {
			v = strings.ToLower(v)
		}
		hs = append(hs, [2]string{name, v})
	}
	canon := tc3CanonicalRequest(r.Method, "/", r.URL.RawQuery, hs, strings.Join(signed, ";"), sha256Hex(body))
	sig := hmacSum(sha256.New, tc3SigningKey(captureSecretKey, date, "kms"), tc3StringToSign(ts, date+"/kms/tc3_request", canon))
	r.Header.Set("Authorization", "TC3-HMAC-SHA256 Credential="+captureSecretID+"/"+date+"/kms/tc3_request, SignedHeaders="+
		strings.Join(signed, ";")+", Signature="+hex.EncodeToString(sig))
}

func TestTC3SignedHeaders(t *testing.T) {
	now := time.Unix(1795413713, 0)
	body := []byte(`{"KeyId":"k"}`)
	newReq := func(host string) *http.Request {
		r, _ := http.NewRequest("POST", "http://"+host+"/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-TC-Action", "DescribeKey")
		r.Header.Set("X-TC-Version", APIVersion)
		r.Header.Set("X-TC-Timestamp", "1795413713")
		return r
	}
	h := authOnly(now)
	// The documented form: x-tc-action signed, values lower-cased.
	r := newReq("kms.example.com")
	signTC3(r, body, []string{"content-type", "host", "x-tc-action"}, true)
	if _, err := h.authenticate(r, body, now); err != nil {
		t.Fatal(err)
	}
	r.Header.Set("X-TC-Action", "DisableKey") // even within RetargetGrace
	if _, err := h.authenticate(r, body, now); codeOf(err) != CodeSignatureFailure {
		t.Fatalf("re-targeted signed action: %v", err)
	}
	// The Go SDK's form: values as sent, here an upper-case host.
	r = newReq("KMS.Example.com:8443")
	signTC3(r, body, []string{"content-type", "host"}, false)
	if _, err := h.authenticate(r, body, now); err != nil {
		t.Fatal(err)
	}
	r.Host = "KMS.Example.com:8444"
	if _, err := h.authenticate(r, body, now); codeOf(err) != CodeSignatureFailure {
		t.Fatalf("other host: %v", err)
	}
}

// resignV1 signs a v1 GET request's parameters with the capture key.
func resignV1(r *http.Request, params url.Values) {
	flat := map[string]string{}
	for k := range params {
		flat[k] = params.Get(k)
	}
	mac := sha1.New
	if flat["SignatureMethod"] == SchemeV1SHA256 {
		mac = sha256.New
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	params.Set("Signature", base64.StdEncoding.EncodeToString(hmacSum(mac, []byte(captureSecretKey), v1StringToSign(r.Method, r.Host, path, flat))))
	r.URL.RawQuery = params.Encode()
}

// A v1 Nonce is a positive integer (Tencent's spec), and no parameter may
// make the unencoded string to sign split another way, even when signed
// correctly (issue 17, finding 4).
func TestV1RefusesAmbiguousParameters(t *testing.T) {
	tried := 0
	for _, c := range loadCaptures(t, "tcv1") {
		r, body, _ := readRequest(c.raw)
		if r.Method != http.MethodGet {
			continue
		}
		h := authOnly(c.when)
		for _, cs := range []struct {
			name, value, code string
		}{
			{"Nonce", "abc", CodeInvalidParameterVal}, {"Nonce", "0", CodeInvalidParameterVal}, {"Nonce", "-5", CodeInvalidParameterVal},
			{"Nonce", "007", CodeInvalidParameterVal}, {"Nonce", "1.5", CodeInvalidParameterVal}, {"Nonce", "99999999999999999999999", CodeInvalidParameterVal},
			{"Nonce", "777&Region=ap-guangzhou", CodeInvalidParameterVal} /* Region is also sent: not a re-split, still no integer */, {"Na=me", "x", CodeInvalidParameter}, {"Na&me", "x", CodeInvalidParameter},
		} {
			r, body, _ = readRequest(c.raw)
			q := r.URL.Query()
			q.Set(cs.name, cs.value)
			resignV1(r, q)
			if _, err := h.authenticate(r, body, c.when); codeOf(err) != cs.code || !strings.Contains(err.Error(), strings.Split(cs.name, "&")[0][:2]) {
				t.Errorf("%s: %s=%q: %v; want %s naming it", c.name, cs.name, cs.value, err, cs.code)
			}
			tried++
		}
		// Re-signed honestly with a fresh integer Nonce it passes.
		r, body, _ = readRequest(c.raw)
		q := r.URL.Query()
		q.Set("Nonce", "4242")
		resignV1(r, q)
		if _, err := h.authenticate(r, body, c.when); err != nil {
			t.Errorf("%s re-signed with Nonce 4242: %v", c.name, err)
		}
	}
	if tried == 0 {
		t.Fatal("no v1 GET capture")
	}
}

// A full replay memory refuses new TC3 signatures and v1 nonces (fail
// closed) with RequestLimitExceeded; it does not panic (issue 17, finding
// 3). The memories hold one request each: a TC3 signature takes four
// entries (its first use, its target, its slot with and without its
// connection), a v1 nonce one.
func TestFullReplayMemoryRefusesWithoutPanic(t *testing.T) {
	for dir, maxRate := range map[string]float64{"tc3": 0.055, "tcv1": 0.01} {
		cs := loadCaptures(t, dir)
		if len(cs) < 2 {
			t.Fatalf("%s: need two captures", dir)
		}
		h := authOnly(cs[0].when)
		mem, err := state.NewMemory(2*TimestampWindow, maxRate)
		if err != nil {
			t.Fatal(err)
		}
		h.replay = wire.NewReplayCache(mem, 2*TimestampWindow)
		r, body, _ := readRequest(cs[0].raw)
		if _, err := h.authenticate(r, body, cs[0].when); err != nil {
			t.Fatalf("%s: %v", cs[0].name, err)
		}
		r, body, _ = readRequest(cs[1].raw)
		if _, err := h.authenticate(r, body, cs[1].when); codeOf(err) != CodeRequestLimitExceeded {
			t.Fatalf("%s with the replay memory full: %v; want %s", cs[1].name, err, CodeRequestLimitExceeded)
		}
	}
}
