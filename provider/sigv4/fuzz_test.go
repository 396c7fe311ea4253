package sigv4_test

import (
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider/sigv4"
)

// FuzzParseAuthorization: the parser never panics, and what it accepts
// has a 32-byte signature, a five-part scope and sorted, unique signed
// headers.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	f.Add("AWS4-HMAC-SHA256 Signature=00,Credential=a/b/c/d/aws4_request,SignedHeaders=host")
	f.Add("AWS4-HMAC-SHA256 Credential=//////, SignedHeaders=;;, Signature=")
	f.Add("AWS4-HMAC-SHA256")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := sigv4.ParseAuthorization(h)
		if err != nil {
			if a != nil {
				t.Fatal("result with error")
			}
			return
		}
		if len(a.Signature) != 32 || len(a.Date) != 8 || a.AccessKeyID == "" || strings.Contains(a.Scope(), "//") {
			t.Fatalf("accepted %q as %+v", h, a)
		}
		for i := 1; i < len(a.SignedHeaders); i++ {
			if a.SignedHeaders[i-1] >= a.SignedHeaders[i] {
				t.Fatalf("unsorted %v", a.SignedHeaders)
			}
		}
	})
}
