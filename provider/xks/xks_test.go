package xks_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider/xks"
)

// TestRoundTrip: metadata, encrypt (with a CDIV) and decrypt through the
// pipeline, signed by aws-sdk-go-v2; the token's output checked with Go's
// GCM under the spec's AAD layout; health; and what the records hold.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	m := f.post("keys/foo/metadata", `{`+meta("DescribeKey")+`}`)
	if m.status != 200 || m.str("keySpec") != "AES_256" || m.str("keyStatus") != "ENABLED" ||
		!slices.Equal(m.body["keyUsage"].([]any), []any{"ENCRYPT", "DECRYPT"}) {
		t.Fatalf("metadata: %d %s", m.status, m.raw)
	}
	if n := f.post("keys/none/metadata", `{`+meta("DescribeKey")+`}`); n.status != 200 || len(n.body["keyUsage"].([]any)) != 0 {
		t.Fatalf("no-usage key metadata: %s", n.raw)
	}
	e := f.post("keys/foo/encrypt", encryptBody("Hello World!", "project=nile", `,"ciphertextDataIntegrityValueAlgorithm":"SHA_256"`))
	if e.status != 200 {
		t.Fatalf("encrypt: %d %s", e.status, e.raw)
	}
	iv, _ := b64.DecodeString(e.str("initializationVector"))
	ct, _ := b64.DecodeString(e.str("ciphertext"))
	tag, _ := b64.DecodeString(e.str("authenticationTag"))
	md, _ := b64.DecodeString(e.str("ciphertextMetadata"))
	if len(iv) != 12 || len(tag) != 16 || len(ct) != len("Hello World!") || len(md) == 0 || len(md) > 20 {
		t.Fatalf("iv %d, tag %d, ciphertext %d, metadata %d bytes", len(iv), len(tag), len(ct), len(md))
	}
	// The AAD the token used: len16(aad) ‖ aad ‖ len8(metadata) ‖ metadata.
	aad := binary.BigEndian.AppendUint16(nil, uint16(len("project=nile")))
	aad = append(append(append(aad, "project=nile"...), byte(len(md))), md...)
	b, _ := aes.NewCipher(knownKey)
	g, _ := cipher.NewGCM(b)
	if pt, err := g.Open(nil, iv, append(ct, tag...), aad); err != nil || string(pt) != "Hello World!" {
		t.Fatalf("Go's GCM does not open the answer under the spec's AAD: %v", err)
	}
	want := sha256.Sum256(slices.Concat([]byte("project=nile"), md, iv, ct, tag))
	if e.str("ciphertextDataIntegrityValue") != b64.EncodeToString(want[:]) {
		t.Fatal("ciphertextDataIntegrityValue is not SHA-256(AAD ‖ metadata ‖ IV ‖ ciphertext ‖ tag)")
	}
	d := f.post("keys/foo/decrypt", decryptBody(e, "project=nile"))
	if d.status != 200 || d.str("plaintext") != enc("Hello World!") {
		t.Fatalf("decrypt: %d %s", d.status, d.raw)
	}
	rec := f.recs.last()
	if rec.API != "xks" || rec.Action != xks.OpDecrypt || rec.KeyId != "foo" || rec.AccessKeyId != testID ||
		rec.Metadata["awsPrincipalArn"] != principal || rec.Metadata["kmsOperation"] != "Decrypt" || rec.Metadata["kmsRequestId"] == "" {
		t.Fatalf("record: %+v", rec)
	}
	for _, r := range f.recs.all {
		for _, v := range r.Metadata {
			if strings.Contains(v, enc("Hello World!")) {
				t.Fatal("a record holds the plaintext")
			}
		}
	}
	if a := f.post("keys/hsm-admin/encrypt", encryptBody("x", "", "")); a.status != 200 {
		t.Fatalf("a foreign key allowed by the file: %s", a.raw)
	}
	h := f.post("health", `{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"r1"}}`)
	details, _ := h.body["ekmFleetDetails"].([]any)
	if h.status != 200 || h.body["xksProxyFleetSize"] != 1.0 || len(details) != 1 ||
		details[0].(map[string]any)["healthStatus"] != "ACTIVE" || h.str("ekmVendor") == "" {
		t.Fatalf("health: %s", h.raw)
	}
	// Without AAD (the token still gets the non-empty length-prefixed AAD).
	e = f.post("keys/foo/encrypt", encryptBody("no aad", "", ""))
	if d := f.post("keys/foo/decrypt", decryptBody(e, "")); d.status != 200 || d.str("plaintext") != enc("no aad") {
		t.Fatalf("without AAD: %s / %s", e.raw, d.raw)
	}
}

// TestCDIVMatchesSpecExample checks the CDIV computation on the
// spec's Appendix C example.
func TestCDIVMatchesSpecExample(t *testing.T) {
	hexs := func(s string) []byte {
		b := make([]byte, 0, len(s)/2)
		for i := 0; i+1 < len(s); i += 2 {
			var v byte
			for _, c := range s[i : i+2] {
				v <<= 4
				switch {
				case c >= '0' && c <= '9':
					v |= byte(c - '0')
				default:
					v |= byte(c-'a') + 10
				}
			}
			b = append(b, v)
		}
		return b
	}
	got := xks.CDIV([]byte("project=nile,department=marketing"), []byte("key_version=1"),
		hexs("1ccae5470f39700254779031"), hexs("821c642b5b71783367deaf18"), hexs("bc1c4dda7707d6812447c5955e99b261"))
	if b64.EncodeToString(got) != "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=" {
		t.Fatalf("CDIV %s", b64.EncodeToString(got))
	}
}

// errCase is one bad request and the error the spec gives it.
type errCase struct {
	name, method, path, body string
	status                   int
	errorName, mentions      string
}

// TestErrorPaths: every refusal carries the spec's errorName and status
// and names the parameter at fault.
func TestErrorPaths(t *testing.T) {
	f := newFixture(t, nil)
	good := f.post("keys/foo/encrypt", encryptBody("data", "ctx", ""))
	withField := func(body, field, value string) string {
		return strings.Replace(body, `"`+field+`":"`, `"`+field+`":"`+value, 1)
	}
	replace := func(body, field, value string) string {
		i := strings.Index(body, `"`+field+`":"`)
		j := strings.Index(body[i+len(field)+4:], `"`)
		return body[:i+len(field)+4] + value + body[i+len(field)+4+j:]
	}
	dec := decryptBody(good, "ctx")
	p := "/" + prefix + "/kms/xks/v1/"
	big := strings.Repeat("A", 5000)
	for _, c := range []errCase{
		{"GET", "GET", p + "health", "", 405, "", ""},
		{"wrong prefix", "POST", "/other/kms/xks/v1/health", `{}`, 404, xks.InvalidUriPathException, ""},
		{"no prefix", "POST", "/kms/xks/v1/health", `{}`, 404, xks.InvalidUriPathException, ""},
		{"unknown operation", "POST", p + "keys/foo/sign", `{}`, 404, xks.InvalidUriPathException, "metadata, encrypt, decrypt"},
		{"unknown path", "POST", p + "keys/foo", `{}`, 404, xks.InvalidUriPathException, ""},
		{"bad externalKeyId", "POST", p + "keys/f%21o/metadata", `{}`, 400, xks.ValidationException, "externalKeyId"},
		{"no requestMetadata", "POST", p + "keys/foo/metadata", `{}`, 400, xks.ValidationException, "requestMetadata"},
		{"empty requestMetadata", "POST", p + "health", `{"requestMetadata":{}}`, 400, xks.ValidationException, "kmsRequestId"},
		{"no awsPrincipalArn", "POST", p + "keys/foo/metadata", `{"requestMetadata":{"kmsOperation":"CreateKey","kmsRequestId":"r"}}`, 400, xks.ValidationException, "awsPrincipalArn"},
		{"no kmsKeyArn", "POST", p + "keys/foo/encrypt", `{"requestMetadata":{"awsPrincipalArn":"a","kmsOperation":"Encrypt","kmsRequestId":"r"},"plaintext":"AA==","encryptionAlgorithm":"AES_GCM"}`, 400, xks.ValidationException, "kmsKeyArn"},
		{"long ARN", "POST", p + "keys/foo/metadata", `{"requestMetadata":{"awsPrincipalArn":"` + strings.Repeat("a", 2049) + `","kmsOperation":"x","kmsRequestId":"r"}}`, 400, xks.ValidationException, "2048"},
		{"not JSON", "POST", p + "keys/foo/metadata", `{"requestMetadata":`, 400, xks.ValidationException, "JSON"},
		{"two JSON values", "POST", p + "keys/foo/metadata", `{` + meta("DescribeKey") + `}{}`, 400, xks.ValidationException, "more than one"},
		{"wrong type", "POST", p + "keys/foo/encrypt", `{` + meta("Encrypt") + `,"plaintext":5}`, 400, xks.ValidationException, "plaintext"},
		{"unlisted key", "POST", p + "keys/bar/metadata", `{` + meta("DescribeKey") + `}`, 404, xks.KeyNotFoundException, "bar"},
		{"listed, not in the token", "POST", p + "keys/ghost/metadata", `{` + meta("DescribeKey") + `}`, 404, xks.KeyNotFoundException, "ghost"},
		{"not made for XKS", "POST", p + "keys/imported/encrypt", encryptBody("x", "", ""), 400, xks.InvalidStateException, "foreign"},
		{"AES-128", "POST", p + "keys/aes128/metadata", `{` + meta("DescribeKey") + `}`, 400, xks.InvalidStateException, "256-bit"},
		{"principal refused", "POST", p + "keys/alice/metadata", strings.Replace(`{`+meta("Decrypt")+`}`, "user/Alice", "user/Bob", 1), 403, xks.AccessDeniedException, "awsPrincipalArn"},
		{"operation refused", "POST", p + "keys/alice/metadata", `{` + meta("Encrypt") + `}`, 403, xks.AccessDeniedException, "kmsOperation"},
		{"no plaintext", "POST", p + "keys/foo/encrypt", `{` + meta("Encrypt") + `,"encryptionAlgorithm":"AES_GCM"}`, 400, xks.ValidationException, "plaintext is required"},
		{"empty plaintext", "POST", p + "keys/foo/encrypt", `{` + meta("Encrypt") + `,"plaintext":"","encryptionAlgorithm":"AES_GCM"}`, 400, xks.ValidationException, "plaintext: 1 to 4300"},
		{"plaintext not Base64", "POST", p + "keys/foo/encrypt", withField(encryptBody("x", "", ""), "plaintext", "!"), 400, xks.ValidationException, "plaintext: not standard Base64"},
		{"plaintext too long", "POST", p + "keys/foo/encrypt", replace(encryptBody("x", "", ""), "plaintext", big+big), 501, xks.UnsupportedOperationException, "plaintext: at most 4300"},
		{"AAD too long", "POST", p + "keys/foo/encrypt", replace(encryptBody("x", "a", ""), "additionalAuthenticatedData", strings.Repeat(big, 3)), 501, xks.UnsupportedOperationException, "additionalAuthenticatedData: at most 8192"},
		{"no algorithm", "POST", p + "keys/foo/encrypt", `{` + meta("Encrypt") + `,"plaintext":"AA=="}`, 400, xks.ValidationException, "encryptionAlgorithm is required: accepted AES_GCM"},
		{"wrong algorithm", "POST", p + "keys/foo/encrypt", strings.Replace(encryptBody("x", "", ""), "AES_GCM", "AES_CBC", 1), 400, xks.ValidationException, "accepted AES_GCM"},
		{"wrong CDIV algorithm", "POST", p + "keys/foo/encrypt", encryptBody("x", "", `,"ciphertextDataIntegrityValueAlgorithm":"MD5"`), 400, xks.ValidationException, "accepted SHA_256"},
		{"encrypt, decrypt-only key", "POST", p + "keys/dec/encrypt", encryptBody("x", "", ""), 400, xks.InvalidKeyUsageException, "encryption"},
		{"CDIV, encrypt-only key", "POST", p + "keys/enc/encrypt", encryptBody("x", "", `,"ciphertextDataIntegrityValueAlgorithm":"SHA_256"`), 400, xks.InvalidKeyUsageException, "decrypting"},
		{"decrypt, encrypt-only key", "POST", p + "keys/enc/decrypt", dec, 400, xks.InvalidKeyUsageException, "decryption"},
		{"no-usage key", "POST", p + "keys/none/encrypt", encryptBody("x", "", ""), 400, xks.InvalidKeyUsageException, "encryption"},
		{"wrong AAD", "POST", p + "keys/foo/decrypt", decryptBody(good, "other"), 400, xks.InvalidCiphertextException, ""},
		{"missing AAD", "POST", p + "keys/foo/decrypt", decryptBody(good, ""), 400, xks.InvalidCiphertextException, ""},
		{"changed tag", "POST", p + "keys/foo/decrypt", replace(dec, "authenticationTag", "AAAAAAAAAAAAAAAAAAAAAA=="), 400, xks.InvalidCiphertextException, ""},
		{"changed metadata", "POST", p + "keys/foo/decrypt", replace(dec, "ciphertextMetadata", "Ag=="), 400, xks.InvalidCiphertextException, ""},
		{"no metadata", "POST", p + "keys/foo/decrypt", strings.Replace(dec, `,"ciphertextMetadata":"`+good.str("ciphertextMetadata")+`"`, "", 1), 400, xks.InvalidCiphertextException, ""},
		{"16-byte IV", "POST", p + "keys/foo/decrypt", replace(dec, "initializationVector", "AAAAAAAAAAAAAAAAAAAAAA=="), 400, xks.InvalidCiphertextException, "12-byte"},
		{"13-byte IV", "POST", p + "keys/foo/decrypt", replace(dec, "initializationVector", enc("0123456789abc")), 400, xks.ValidationException, "initializationVector: accepted 12 or 16"},
		{"short tag", "POST", p + "keys/foo/decrypt", replace(dec, "authenticationTag", enc("short")), 400, xks.ValidationException, "authenticationTag: accepted 16"},
		{"metadata too long", "POST", p + "keys/foo/decrypt", replace(dec, "ciphertextMetadata", enc(strings.Repeat("m", 21))), 400, xks.ValidationException, "ciphertextMetadata: at most 20"},
		{"no ciphertext", "POST", p + "keys/foo/decrypt", strings.Replace(dec, `"ciphertext":"`+good.str("ciphertext")+`",`, "", 1), 400, xks.ValidationException, "ciphertext is required"},
		{"no IV", "POST", p + "keys/foo/decrypt", strings.Replace(dec, `"initializationVector":"`+good.str("initializationVector")+`",`, "", 1), 400, xks.ValidationException, "initializationVector is required"},
		{"body too large", "POST", p + "keys/foo/encrypt", `{"x":"` + strings.Repeat("a", 70<<10) + `"}`, 501, xks.UnsupportedOperationException, "body exceeds"},
	} {
		a := f.send(c.method, c.path, c.body, testSecret)
		if a.status != c.status || c.errorName != "" && a.str("errorName") != c.errorName || !strings.Contains(a.str("errorMessage"), c.mentions) {
			t.Errorf("%s: %d %s; want %d %s mentioning %q", c.name, a.status, a.raw, c.status, c.errorName, c.mentions)
		}
		if len(a.str("errorMessage")) >= 512 {
			t.Errorf("%s: errorMessage of %d characters", c.name, len(a.str("errorMessage")))
		}
	}
}

// TestAuthentication: a missing, wrong or replayed signature is
// AuthenticationFailedException (401) and records no action, key or
// requestMetadata (nothing an unauthenticated caller sends becomes a
// metric label or an audit field); the rate limit is ThrottlingException.
func TestAuthentication(t *testing.T) {
	f := newFixture(t, &allowN{n: 3})
	path := "/" + prefix + "/kms/xks/v1/keys/foo/metadata"
	body := `{` + meta("DescribeKey") + `}`
	unsigned, _ := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(body))
	for name, a := range map[string]answer{
		"unsigned":     do(t, unsigned),
		"wrong secret": f.send("POST", path, body, "Another43CharacterSecretThatIsNotTheRightOne"),
	} {
		if a.status != 401 || a.str("errorName") != xks.AuthenticationFailedException {
			t.Errorf("%s: %d %s", name, a.status, a.raw)
		}
		if r := f.recs.last(); r.Action != "" || r.KeyId != "" || r.Metadata != nil || r.Code != xks.AuthenticationFailedException {
			t.Errorf("%s: record %+v", name, r)
		}
	}
	req := f.signed("POST", path, body, testSecret)
	again := f.signed("POST", path, body, testSecret)
	again.Header = req.Header.Clone()
	if a := do(t, req); a.status != 200 {
		t.Fatalf("first: %s", a.raw)
	}
	if a := do(t, again); a.status != 401 || !strings.Contains(a.str("errorMessage"), "already received") {
		t.Fatalf("replay: %d %s", a.status, a.raw)
	}
	f.post("keys/foo/metadata", `{`+meta("DescribeKey")+`}`)
	f.post("keys/foo/metadata", `{`+meta("DescribeKey")+`}`)
	if a := f.post("keys/foo/metadata", `{`+meta("DescribeKey")+`}`); a.status != 429 || a.str("errorName") != xks.ThrottlingException {
		t.Fatalf("over the limit: %d %s", a.status, a.raw)
	}
}
