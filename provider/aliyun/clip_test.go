package aliyun_test

import (
	"net/http"
	"testing"
)

// The access key id a refused request claims is audited sanitised and
// clipped, as Tencent's is: a control character cannot forge a log line.
func TestClaimedAccessKeyIdIsSanitisedInTheRecord(t *testing.T) {
	e := newEnv(t)
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/?Action=ListKeys&AccessKeyId=LTAI%0Aforged%1B%5B31m&Signature=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := e.obs.last().AccessKeyId, "LTAI?forged?[31m"; got != want {
		t.Fatalf("record AccessKeyId %q, want %q", got, want)
	}
}
