package server_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerrors "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// leakFixture is a server with three keys: app (aliases alias/app-one and
// alias/another), other (alias/other) and bare (no alias), and access keys
// allowed only alias/app-* on both dialects.
type leakFixture struct {
	app, other, bare string
	ali              aliRaw
	tc               *tckms.Client
}

const (
	leakAliID, leakAliSecret = "LTAI5tPolicyLeakOnly0001", "PolicyLeakOnlySecretForLocalKMS001"
	leakTcID, leakTcSecret   = "AKIDPolicyLeakOnly000000000000000000001", "PolicyLeakOnlySecretKeyForLocalKMS01"
)

func newLeakFixture(t *testing.T) leakFixture {
	t.Helper()
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	var f leakFixture
	for _, k := range []struct {
		id      *string
		aliases []string
	}{{&f.app, []string{"alias/app-one", "alias/another"}}, {&f.other, []string{"alias/other"}}, {&f.bare, nil}} {
		ck, err := kms.CreateKey(t.Context(), &provider.CreateKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		*k.id = ck.KeyMetadata.KeyId
		for _, a := range k.aliases {
			if _, err := kms.CreateAlias(t.Context(), &provider.AliasRequest{AliasName: a, KeyId: *k.id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pol := wire.Policy{Actions: []string{"*"}, Keys: []string{"alias/app-*"}}
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: leakAliID, AccessKeySecret: leakAliSecret, Policy: pol},
		wire.AccessKey{AccessKeyId: leakTcID, AccessKeySecret: leakTcSecret, Policy: pol})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	f.ali = newAliRaw(t, addr, leakAliID, leakAliSecret)
	tc, err := tckms.NewClient(common.NewCredential(leakTcID, leakTcSecret), "ap-guangzhou", tcProfile(addr))
	if err != nil {
		t.Fatal(err)
	}
	f.tc = tc
	return f
}

// listed returns the values of field in the list body[outer][inner].
func listed(body map[string]any, outer, inner, field string) []string {
	var out []string
	o, _ := body[outer].(map[string]any)
	items, _ := o[inner].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		s, _ := m[field].(string)
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Listings show only what the policy allows (issue 17, finding 10): a key
// allowed only alias/app-* sees the key alias/app-one names, and of the
// aliases only alias/app-one, also when it asks for that key's aliases.
func TestListingsFollowThePolicy(t *testing.T) {
	f := newLeakFixture(t)
	body, code, msg := f.ali.call("ListKeys", map[string]string{"PageSize": "100"})
	if got := listed(body, "Keys", "Key", "KeyId"); code != "" || !slices.Equal(got, []string{f.app}) || fmt.Sprint(body["TotalCount"]) != "1" {
		t.Errorf("Alibaba ListKeys: %s %s: keys %v, TotalCount %v; want only %s", code, msg, got, body["TotalCount"], f.app)
	}
	body, code, msg = f.ali.call("ListAliases", map[string]string{"PageSize": "100"})
	if got := listed(body, "Aliases", "Alias", "AliasName"); code != "" || !slices.Equal(got, []string{"alias/app-one"}) || fmt.Sprint(body["TotalCount"]) != "1" {
		t.Errorf("ListAliases: %s %s: %v, TotalCount %v; want only alias/app-one", code, msg, got, body["TotalCount"])
	}
	body, code, msg = f.ali.call("ListAliasesByKeyId", map[string]string{"KeyId": "alias/app-one"})
	if got := listed(body, "Aliases", "Alias", "AliasName"); code != "" || !slices.Equal(got, []string{"alias/app-one"}) {
		t.Errorf("ListAliasesByKeyId alias/app-one: %s %s: %v; want only alias/app-one (not alias/another)", code, msg, got)
	}
	// Tencent's KeyMetadata.Alias shows an allowed alias, not the one that
	// sorts first.
	dr := tckms.NewDescribeKeyRequest()
	dr.KeyId = common.StringPtr("alias/app-one")
	if d, err := f.tc.DescribeKey(dr); err != nil || *d.Response.KeyMetadata.Alias != "app-one" {
		t.Errorf("Tencent DescribeKey alias/app-one: %v; want Alias app-one (not another)", err)
	}
	tl, err := f.tc.ListKeys(tckms.NewListKeysRequest())
	if err != nil {
		t.Fatalf("Tencent ListKeys: %v", err)
	}
	if r := tl.Response; *r.TotalCount != 1 || len(r.Keys) != 1 || *r.Keys[0].KeyId != f.app {
		t.Errorf("Tencent ListKeys: TotalCount %d, %d keys; want only %s", *r.TotalCount, len(r.Keys), f.app)
	}
}

// A key id or alias outside the policy is refused with the same code and
// message whether or not it exists, on both dialects: a restricted key
// cannot probe which ids and aliases exist (issue 17, finding 10). The key
// alias/app-one names is allowed by its id too.
func TestRestrictedKeyCannotProbeNames(t *testing.T) {
	f := newLeakFixture(t)
	const ghostID, ghostAlias = "00000000-0000-4000-8000-000000000000", "alias/ghost"
	for _, pair := range [][2]string{{f.other, ghostID}, {f.bare, ghostID}, {"alias/other", ghostAlias}, {"alias/another", ghostAlias}} {
		_, c1, m1 := f.ali.call("DescribeKey", map[string]string{"KeyId": pair[0]})
		_, c2, m2 := f.ali.call("DescribeKey", map[string]string{"KeyId": pair[1]})
		if c1 != provider.CodeNoPermission || c1 != c2 || !sameMessage(m1, pair[0], m2, pair[1]) {
			t.Errorf("Alibaba DescribeKey %s (exists): %s %q; %s (does not): %s %q; want the same %s",
				pair[0], c1, m1, pair[1], c2, m2, provider.CodeNoPermission)
		}
		e1, e2 := tcDescribe(f.tc, pair[0]), tcDescribe(f.tc, pair[1])
		if e1 == nil || e2 == nil || e1.Code != "UnauthorizedOperation" || e1.Code != e2.Code ||
			!sameMessage(e1.Message, pair[0], e2.Message, pair[1]) {
			t.Errorf("Tencent DescribeKey %s (exists): %v; %s (does not): %v; want the same UnauthorizedOperation", pair[0], e1, pair[1], e2)
		}
	}
	// Inside the policy, existence is told as before.
	if _, code, _ := f.ali.call("DescribeKey", map[string]string{"KeyId": "alias/app-ghost"}); code != provider.CodeAliasNotFound {
		t.Errorf("DescribeKey alias/app-ghost: %s; want %s", code, provider.CodeAliasNotFound)
	}
	if body, code, msg := f.ali.call("DescribeKey", map[string]string{"KeyId": f.app}); code != "" || body["KeyMetadata"] == nil {
		t.Errorf("DescribeKey by the id alias/app-one names: %s %s", code, msg)
	}
}

// tcDescribe calls Tencent DescribeKey and returns its SDK error (nil on success).
func tcDescribe(c *tckms.Client, ref string) *tcerrors.TencentCloudSDKError {
	req := tckms.NewDescribeKeyRequest()
	req.KeyId = common.StringPtr(ref)
	_, err := c.DescribeKey(req)
	var se *tcerrors.TencentCloudSDKError
	if errors.As(err, &se) {
		return se
	}
	if err != nil {
		return &tcerrors.TencentCloudSDKError{Code: "not an SDK error", Message: err.Error()}
	}
	return nil
}

// sameMessage reports whether two error messages are the same but for the
// name each was about (a and b) and the SDK's "request id: ..." suffix.
func sameMessage(m1, a, m2, b string) bool {
	cut := func(m, name string) string {
		m, _, _ = strings.Cut(m, " request id:")
		return strings.ReplaceAll(m, name, "X")
	}
	return cut(m1, a) == cut(m2, b)
}
