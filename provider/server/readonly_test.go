package server_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerrors "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// records keeps the pipeline's records (what the audit log is given).
type records struct {
	mu  sync.Mutex
	all []wire.Record
}

func (r *records) Observe(rec wire.Record) { r.mu.Lock(); r.all = append(r.all, rec); r.mu.Unlock() }

func (r *records) byAction(action string) []wire.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.Record
	for _, rec := range r.all {
		if rec.Action == action {
			out = append(out, rec)
		}
	}
	return out
}

// The table's read/write column (wire.Action.Write) in the pipeline: an
// access key whose policy is "@read" (wire.ReadActions) reads — DescribeKey,
// Encrypt, GenerateDataKey — through both official SDKs, and every write
// row — DisableKey, ScheduleKeyDeletion, CreateKey, UpdateAlias (Tencent),
// CreateAlias (Alibaba) — is refused with the dialect's no-permission code
// before anything changes; the records (the audit log's input) say which
// actions wrote.
func TestReadOnlyPolicyCannotReachAWriteRow(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	const roAli, roTC, roSecret = "LTAIreadonlyOnly01", "AKIDReadOnlySecretId000000000000000005", "ReadOnlySecretForLocalKMS00000005"
	ro := wire.Policy{Actions: []string{wire.ReadActions}, Keys: []string{"*"}}
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: roAli, AccessKeySecret: roSecret, Policy: ro}, wire.AccessKey{AccessKeyId: roTC, AccessKeySecret: roSecret, Policy: ro})
	recs := &records{}
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, Audit: recs}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ck, err := aliClient(t, addr).CreateKey(&alikms.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.Body.KeyMetadata.KeyId

	tc, err := tckms.NewClient(common.NewCredential(roTC, roSecret), "ap-guangzhou", tcProfile(addr))
	if err != nil {
		t.Fatal(err)
	}
	dk := tckms.NewDescribeKeyRequest()
	dk.KeyId = id
	if _, err := tc.DescribeKey(dk); err != nil {
		t.Fatalf("Tencent DescribeKey under @read: %v", err)
	}
	enc := tckms.NewEncryptRequest()
	enc.KeyId, enc.Plaintext = id, common.StringPtr("aGVsbG8=")
	if _, err := tc.Encrypt(enc); err != nil {
		t.Fatalf("Tencent Encrypt under @read: %v", err)
	}
	tcRefused := func(what string, err error) {
		t.Helper()
		var e *tcerrors.TencentCloudSDKError
		if !errors.As(err, &e) || e.Code != "UnauthorizedOperation" {
			t.Errorf("Tencent %s under @read: %v; want UnauthorizedOperation", what, err)
		}
	}
	dis := tckms.NewDisableKeyRequest()
	dis.KeyId = id
	_, err = tc.DisableKey(dis)
	tcRefused("DisableKey", err)
	sk := tckms.NewScheduleKeyDeletionRequest()
	sk.KeyId, sk.PendingWindowInDays = id, common.Uint64Ptr(7)
	_, err = tc.ScheduleKeyDeletion(sk)
	tcRefused("ScheduleKeyDeletion", err)
	ckr := tckms.NewCreateKeyRequest()
	ckr.Alias = common.StringPtr("ro-made")
	_, err = tc.CreateKey(ckr)
	tcRefused("CreateKey", err)
	ua := tckms.NewUpdateAliasRequest()
	ua.KeyId, ua.Alias = id, common.StringPtr("ro-alias")
	_, err = tc.UpdateAlias(ua)
	tcRefused("UpdateAlias", err)

	ali := aliClientAs(t, addr, roAli, roSecret)
	if _, err := ali.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: id}); err != nil {
		t.Fatalf("Alibaba GenerateDataKey under @read: %v", err)
	}
	for what, call := range map[string]func() error{
		"DisableKey": func() error { _, err := ali.DisableKey(&alikms.DisableKeyRequest{KeyId: id}); return err },
		"CreateAlias": func() error {
			_, err := ali.CreateAlias(&alikms.CreateAliasRequest{KeyId: id, AliasName: tea.String("alias/ro")})
			return err
		},
	} {
		var se *tea.SDKError
		if err := call(); !errors.As(err, &se) || tea.StringValue(se.Code) != provider.CodeNoPermission {
			t.Errorf("Alibaba %s under @read: %v; want %s", what, err, provider.CodeNoPermission)
		}
	}
	d, err := kms.DescribeKey(t.Context(), &provider.KeyIdRequest{KeyId: tea.StringValue(id)})
	if err != nil || d.KeyMetadata.KeyState != provider.StateEnabled {
		t.Fatalf("the key after the refused writes: %+v %v", d, err)
	}
	if _, err := kms.ResolveKeyId(t.Context(), "alias/ro-alias"); provider.ErrorCode(err) != provider.CodeAliasNotFound {
		t.Fatalf("alias/ro-alias: %v", err)
	}
	for action, write := range map[string]bool{"DescribeKey": false, "Encrypt": false, "GenerateDataKey": false, "DisableKey": true, "CreateAlias": true} {
		rs := recs.byAction(action)
		if len(rs) == 0 {
			t.Errorf("no record of %s", action)
		}
		for _, r := range rs {
			if r.Write != write {
				t.Errorf("record of %s: Write %v, want %v", action, r.Write, write)
			}
		}
	}
}

// aliClientAs is the official Alibaba v3 SDK client signing as id.
func aliClientAs(t *testing.T, addr, id, secret string) *alikms.Client {
	t.Helper()
	c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
		AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
