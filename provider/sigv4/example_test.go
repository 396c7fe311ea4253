package sigv4_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider/sigv4"
)

// A verifier for one service, checking the AWS test suite's get-vanilla
// request at the time it was signed.
func ExampleVerifier_Verify() {
	v, _ := sigv4.New(sigv4.Config{
		Service: "service",
		Now:     func() time.Time { return time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) },
		Lookup: func(id string) (sigv4.Key, bool) {
			return sigv4.Key{Secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, id == "AKIDEXAMPLE"
		},
	})
	raw := "GET / HTTP/1.1\r\nHost: example.amazonaws.com\r\nX-Amz-Date: 20150830T123600Z\r\n" +
		"Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
		"SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\r\n\r\n"
	r, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	a, err := v.Verify(r, nil)
	fmt.Println(a.AccessKeyID, a.Region, err)

	r, _ = http.ReadRequest(bufio.NewReader(strings.NewReader(strings.Replace(raw, "5fa0", "5fa1", 1))))
	_, err = v.Verify(r, nil)
	fmt.Println(err.(*sigv4.Error).Kind.AWSCode())
	// Output:
	// AKIDEXAMPLE us-east-1 <nil>
	// InvalidSignatureException
}
