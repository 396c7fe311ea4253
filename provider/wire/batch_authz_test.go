package wire_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// tencentClient is the official Tencent SDK's client of the composed
// server over kms, signing with an access key of policy p.
func tencentClient(t *testing.T, kms *provider.Service, p wire.Policy) *tckms.Client {
	t.Helper()
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: p})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys}))
	t.Cleanup(srv.Close)
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint, cpf.HttpProfile.Scheme = strings.TrimPrefix(srv.URL, "http://"), "http"
	c, err := tckms.NewClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", cpf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A batch names several keys: the pipeline authorizes every one before the
// action runs (Action.Touches returns one Touched per key). An access key
// allowed key A (and a missing id): DescribeKeys of A and the missing key
// describes A (the missing key is left out, SkipMissing); of A and B, or
// of A and a missing key outside the policy, it is refused; DisableKeys of A and B is refused and leaves A enabled.
func TestTencentBatchesAuthorizeEveryKey(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	ctx := context.Background()
	var a, b string
	for _, id := range []*string{&a, &b} {
		k, err := kms.CreateKey(ctx, &provider.CreateKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		*id = k.KeyMetadata.KeyId
	}
	const ghost, ghostOutside = "00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000001"
	c := tencentClient(t, kms, wire.Policy{Actions: []string{"DescribeKeys", "DisableKeys"}, Keys: []string{a, ghost}})
	describe := func(ids ...string) (*tckms.DescribeKeysResponse, error) {
		req := tckms.NewDescribeKeysRequest()
		req.KeyIds = common.StringPtrs(ids)
		return c.DescribeKeys(req)
	}
	r, err := describe(a, ghost)
	if err != nil || len(r.Response.KeyMetadatas) != 1 || *r.Response.KeyMetadatas[0].KeyId != a {
		t.Fatalf("DescribeKeys of A and a missing key the policy names: %v %v", r, err)
	}
	// A key outside the policy is refused whether or not it exists
	// (issue 17, finding 10: existence is not told).
	var se *tcerr.TencentCloudSDKError
	for _, other := range []string{b, ghostOutside} {
		if _, err := describe(a, other); !errors.As(err, &se) || se.Code != "UnauthorizedOperation" {
			t.Fatalf("DescribeKeys of A and %s (outside the policy): %v", other, err)
		}
	}
	req := tckms.NewDisableKeysRequest()
	req.KeyIds = common.StringPtrs([]string{a, b})
	if _, err := c.DisableKeys(req); !errors.As(err, &se) || se.Code != "UnauthorizedOperation" {
		t.Fatalf("DisableKeys of A and B: %v", err)
	}
	if d, err := kms.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: a}); err != nil || d.KeyMetadata.KeyState != provider.StateEnabled {
		t.Fatalf("key A after the refused batch: %v %v", d, err)
	}
}
