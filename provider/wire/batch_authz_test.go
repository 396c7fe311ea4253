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
// allowed key A only: DescribeKeys of A and B is refused, and so is A and
// a key that does not exist (the same answer, so the policy cannot probe
// which ids exist); DisableKeys of A and B is refused and leaves A
// enabled. An access key whose policy also names the missing id describes
// A alone (the missing key is left out, SkipMissing).
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
	c := tencentClient(t, kms, wire.Policy{Actions: []string{"DescribeKeys", "DisableKeys"}, Keys: []string{a}})
	describe := func(ids ...string) (*tckms.DescribeKeysResponse, error) {
		req := tckms.NewDescribeKeysRequest()
		req.KeyIds = common.StringPtrs(ids)
		return c.DescribeKeys(req)
	}
	const missing = "00000000-0000-4000-8000-000000000000"
	var se *tcerr.TencentCloudSDKError
	if _, err := describe(a, missing); !errors.As(err, &se) || se.Code != "UnauthorizedOperation" {
		t.Fatalf("DescribeKeys of A and a missing key outside the policy: %v", err)
	}
	wide := tencentClient(t, kms, wire.Policy{Actions: []string{"DescribeKeys"}, Keys: []string{a, missing}})
	wreq := tckms.NewDescribeKeysRequest()
	wreq.KeyIds = common.StringPtrs([]string{a, missing})
	r, err := wide.DescribeKeys(wreq)
	if err != nil || len(r.Response.KeyMetadatas) != 1 || *r.Response.KeyMetadatas[0].KeyId != a {
		t.Fatalf("DescribeKeys of A and a missing key the policy names: %v %v", r, err)
	}
	if _, err := describe(a, b); !errors.As(err, &se) || se.Code != "UnauthorizedOperation" {
		t.Fatalf("DescribeKeys of A and B: %v", err)
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
