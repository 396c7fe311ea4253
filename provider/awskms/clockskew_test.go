package awskms_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// TestClockSkewAppliesToAWS: `serve --clock-skew 2s` sizes the replay
// memory for a 4-s window. The AWS dialect remembered signatures for a
// fixed 11 minutes, longer than that memory holds, so every AWS request
// failed (KMSInternalException, "replay memory unavailable"). Now the
// dialect takes --clock-skew like the others: requests are served, and
// X-Amz-Date 3 s off is refused by its date.
func TestClockSkewAppliesToAWS(t *testing.T) {
	tok := softhsmtest.New(t)
	e := &env{kms: provider.New(tok.Token, provider.Options{Region: region, Account: account}), obs: &recorder{}, clock: &clock{}}
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: accessID, AccessKeySecret: secret,
		Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	e.srv = httptest.NewServer(server.New(server.Config{KMS: e.kms, Keys: keys, Audit: e.obs, Now: e.clock.Now,
		ClockSkew: 2 * time.Second}))
	t.Cleanup(e.srv.Close)

	c := e.admin()
	if _, err := c.ListKeys(ctx(), &kms.ListKeysInput{}); err != nil {
		t.Fatalf("ListKeys with --clock-skew 2s: %v", err)
	}
	e.clock.offset.Store(int64(3 * time.Second)) // the server's clock runs 3 s ahead of the client's
	_, err := c.ListKeys(ctx(), &kms.ListKeysInput{})
	wantErr(t, "ListKeys signed 3 s in the past with --clock-skew 2s", err, "InvalidSignatureException", 400)
}
