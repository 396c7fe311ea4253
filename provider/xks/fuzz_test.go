package xks

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParsePath: any path parses to a route or an *Error with the spec's
// name, never panics; a route's externalKeyId is within the spec's set.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/p/kms/xks/v1/health", "/p/kms/xks/v1/keys/foo/encrypt", "/kms/xks/v1/keys//metadata", "/p/kms/xks/v1/keys/a/b/c"} {
		f.Add(s, "p")
	}
	f.Fuzz(func(t *testing.T, p, prefix string) {
		rt, err := parsePath(p, prefix)
		var e *Error
		switch {
		case err != nil && (!errors.As(err, &e) || e.Status() == 0):
			t.Fatalf("%q: %v is not a spec error", p, err)
		case err == nil && rt.op != OpGetHealthStatus && !externalKeyIDPattern.MatchString(rt.keyID):
			t.Fatalf("%q: key id %q", p, rt.keyID)
		}
	})
}

// FuzzDecodeBody: any body decodes to checked inputs or a spec error, and
// decoded inputs respect the limits.
func FuzzDecodeBody(f *testing.F) {
	m := `"requestMetadata":{"awsPrincipalArn":"a","kmsKeyArn":"k","kmsOperation":"Encrypt","kmsRequestId":"r"}`
	for _, s := range []string{`{}`, `{` + m + `,"plaintext":"AA==","encryptionAlgorithm":"AES_GCM"}`,
		`{` + m + `,"ciphertext":"AA==","initializationVector":"AAAAAAAAAAAAAAAA","authenticationTag":"AAAAAAAAAAAAAAAAAAAAAA==","encryptionAlgorithm":"AES_GCM","ciphertextMetadata":"AQ=="}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, op := range []string{OpEncrypt, OpDecrypt, OpGetKeyMetadata, OpGetHealthStatus} {
			b, err := decodeBody(raw, op)
			if err != nil {
				mustBeSpecError(t, err)
				continue
			}
			if e, err := b.encryptInput(); err != nil {
				mustBeSpecError(t, err)
			} else if len(e.plaintext) == 0 || len(e.plaintext) > MaxPlaintext || len(e.aad) > MaxAAD {
				t.Fatalf("encrypt input out of bounds: %d, %d", len(e.plaintext), len(e.aad))
			}
			if d, err := b.decryptInput(); err != nil {
				mustBeSpecError(t, err)
			} else if len(d.tag) != 16 || len(d.iv) != 12 && len(d.iv) != 16 || len(d.metadata) > MaxCiphertextMetadata {
				t.Fatalf("decrypt input out of bounds")
			}
		}
	})
}

func mustBeSpecError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status() == 0 || strings.ContainsAny(e.message(), "\x00\n") || len(e.message()) >= 512 {
		t.Fatalf("%v is not a spec error with a clean message", err)
	}
}

// FuzzParseFile: any bytes parse to a configuration that checks, each
// credential with exactly one form of its secret, or an error naming the
// file; never a panic.
func FuzzParseFile(f *testing.F) {
	id, secret := "AKIDXKSTESTKEY234567ABCD", "PleaseReplaceThisWithSomeSecretOfLength43To64"
	for _, s := range []string{`{}`, `{"credentials":[{"accessKeyId":"` + id + `","secretAccessKey":"` + secret + `"}],"keys":{"k":{"disabled":true}}}`,
		`{"credentials":[{"accessKeyId":"` + id + `","sealedSecretAccessKey":"AAAA"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := parseFile("xks.json", raw)
		if err != nil {
			if !strings.Contains(err.Error(), "xks.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("parsed but does not check: %v", err)
		}
		for _, cr := range c.Credentials {
			if (cr.SecretAccessKey == "") == (cr.SealedSecretAccessKey == "") {
				t.Fatalf("credential %s with both or neither secret form", cr.AccessKeyID)
			}
		}
	})
}
