package bench

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The p11kms binary (serve and bench alike) links no cloud SDK client:
// bench --server signs its own requests (issues 16 and 19), and the AWS
// dialect verifies SigV4 with provider/sigv4, not the AWS SDK (issue 20).
func TestBinaryLinksNoSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/p11kms/p11kms/cmd/p11kms").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	sdk := regexp.MustCompile(`alibabacloud|aliyun/alibaba|tencentcloud|aws/aws-sdk-go|aws/smithy-go`)
	var linked []string
	for _, pkg := range strings.Fields(string(out)) {
		if sdk.MatchString(pkg) {
			linked = append(linked, pkg)
		}
	}
	if len(linked) > 0 {
		t.Fatalf("cmd/p11kms links %d SDK packages: %s", len(linked), strings.Join(linked, " "))
	}
	for _, own := range []string{"internal/bench", "provider/awskms", "provider/sigv4"} {
		if !strings.Contains(string(out), "github.com/p11kms/p11kms/"+own+"\n") {
			t.Fatalf("go list -deps does not list %s: the check would pass for the wrong reason", own)
		}
	}
}
