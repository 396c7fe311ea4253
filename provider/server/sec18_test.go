package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// tcV1Client signs Tencent v1 (HmacSHA256, GET) requests: one fresh nonce,
// so one replay-memory entry, per request.
func tcV1Client(t *testing.T, addr, id, secret string) *tckms.Client {
	t.Helper()
	cpf := tcProfile(addr)
	cpf.SignMethod = "HmacSHA256"
	cpf.HttpProfile.ReqMethod = http.MethodGet
	c, err := tckms.NewClient(common.NewCredential(id, secret), "ap-guangzhou", cpf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An access key filling the replay memory with authorized requests is
// throttled with its dialect's throttling code; every other access key
// keeps being served (issue 17 finding 3, issue 18). Before, a full memory
// refused every client alike.
func TestReplayMemoryFloodThrottlesOnlyTheFlooder(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	random := wire.Policy{Actions: []string{"GenerateRandom", "ListKeys"}, Keys: []string{"*"}}
	const otherID, otherSecret = "LTAIOtherAccessKey0001", "OtherAccessKeySecret00000001"
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: random},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: random},
		wire.AccessKey{AccessKeyId: otherID, AccessKeySecret: otherSecret, Policy: random})
	// 0.1 request/s over 30 min: 26 entries a bucket, so a flood fills it.
	// Each flood gets a server of its own (a fresh bucket).
	start := func() (ali, other aliRaw, tcRandom func() string) {
		st, err := state.Open(state.Config{Window: server.ReplayWindow(0), MaxRate: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, State: st}))
		t.Cleanup(srv.Close)
		addr := strings.TrimPrefix(srv.URL, "http://")
		tc := tcV1Client(t, addr, tcID, tcSecret)
		return newAliRaw(t, addr, aliID, aliSecret), newAliRaw(t, addr, otherID, otherSecret), func() string {
			req := tckms.NewGenerateRandomRequest()
			req.NumberOfBytes = common.Uint64Ptr(16)
			if _, err := tc.GenerateRandom(req); err != nil {
				return err.Error()
			}
			return ""
		}
	}
	aliRandom := func(c aliRaw) string {
		_, code, _ := c.call("ListKeys", nil)
		return code
	}
	flood := func(name string, send func() string, want string) {
		t.Helper()
		for i := range 100 {
			switch code := send(); {
			case code == "":
			case strings.Contains(code, want):
				if i < 10 {
					t.Fatalf("%s throttled after only %d requests", name, i)
				}
				return
			default:
				t.Fatalf("%s request %d: %q, want success or %s", name, i, code, want)
			}
		}
		t.Fatalf("%s: 100 requests into a 26-entry bucket, never throttled", name)
	}
	ali, other, tcRandom := start()
	flood("alibaba flood", func() string { return aliRandom(ali) }, "Rejected.Throttling")
	if code := aliRandom(other); code != "" {
		t.Fatalf("another Alibaba access key while one floods: %q", code)
	}
	if code := tcRandom(); code != "" {
		t.Fatalf("a Tencent SecretId while an Alibaba key floods: %s", code)
	}
	ali, other, tcRandom = start()
	flood("tencent v1 flood", tcRandom, "RequestLimitExceeded")
	if code := aliRandom(other); code != "" {
		t.Fatalf("an Alibaba access key while a Tencent SecretId floods: %q", code)
	}
	if code := aliRandom(ali); code != "" {
		t.Fatalf("a second Alibaba access key while a Tencent SecretId floods: %q", code)
	}
}
