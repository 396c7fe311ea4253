package wire_test

import (
	"context"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

const (
	aliAK, aliSecret = "LTAI5tOnlyKeyA000000001", "OnlyKeyASecretForResolveOnceTest01"
	tcID, tcSecret   = "AKIDOnlyKeyA00000000000000000000000001", "OnlyKeyASecretForResolveOnceTest02"
)

// repointEnv is the composed server over a fresh token with keys A and B,
// alias/x naming A, and access keys (one per dialect) allowed Encrypt on
// key A only, named by its id.
type repointEnv struct {
	kms  *provider.Service
	addr string
	a, b string
}

func newRepointEnv(t *testing.T) *repointEnv {
	t.Helper()
	tok := softhsmtest.New(t)
	e := &repointEnv{kms: provider.New(tok.Token, provider.Options{})}
	ctx := context.Background()
	for _, id := range []*string{&e.a, &e.b} {
		k, err := e.kms.CreateKey(ctx, &provider.CreateKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		*id = k.KeyMetadata.KeyId
	}
	if _, err := e.kms.CreateAlias(ctx, &provider.AliasRequest{AliasName: "alias/x", KeyId: e.a}); err != nil {
		t.Fatal(err)
	}
	onlyA := wire.Policy{Actions: []string{"Encrypt"}, Keys: []string{e.a}}
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: aliAK, AccessKeySecret: aliSecret, Policy: onlyA},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: onlyA})
	srv := httptest.NewServer(server.New(server.Config{KMS: e.kms, Keys: keys}))
	t.Cleanup(srv.Close)
	e.addr = strings.TrimPrefix(srv.URL, "http://")
	return e
}

// repointAfterAuthorize makes the first request's authorization be
// followed by alias/x being repointed to key B.
func (e *repointEnv) repointAfterAuthorize(t *testing.T) {
	var once sync.Once
	wire.SetAfterAuthorize(t, func(ctx context.Context) {
		once.Do(func() {
			if _, err := e.kms.UpdateAlias(ctx, &provider.AliasRequest{AliasName: "alias/x", KeyId: e.b}); err != nil {
				t.Errorf("repointing alias/x: %v", err)
			}
		})
	})
}

// blobKey is the key a ciphertext blob is under, as the KMS decrypts it.
func (e *repointEnv) blobKey(t *testing.T, blob string) string {
	t.Helper()
	d, err := e.kms.Decrypt(context.Background(), &provider.DecryptRequest{CiphertextBlob: blob})
	if err != nil {
		t.Fatal(err)
	}
	return d.KeyId
}

// An access key allowed only key A encrypts with KeyId alias/x while the
// alias is repointed to B between authorization and use: the key checked
// is the key used, A, never B.
func TestAliasRepointedAfterAuthorizeIsNotUsed(t *testing.T) {
	pt := base64.StdEncoding.EncodeToString([]byte("resolve once"))
	t.Run("alibaba", func(t *testing.T) {
		e := newRepointEnv(t)
		e.repointAfterAuthorize(t)
		c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(e.addr), Protocol: tea.String("HTTP"),
			RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(aliAK), AccessKeySecret: tea.String(aliSecret)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Encrypt(&alikms.EncryptRequest{KeyId: tea.String("alias/x"), Plaintext: tea.String(pt)})
		if err != nil {
			t.Fatal(err)
		}
		if got := tea.StringValue(r.Body.KeyId); got != e.a {
			t.Errorf("response KeyId %s, want key A %s (B is %s)", got, e.a, e.b)
		}
		if got := e.blobKey(t, tea.StringValue(r.Body.CiphertextBlob)); got != e.a {
			t.Errorf("the blob is under %s, want key A %s (B is %s)", got, e.a, e.b)
		}
	})
	t.Run("tencent", func(t *testing.T) {
		e := newRepointEnv(t)
		e.repointAfterAuthorize(t)
		cpf := profile.NewClientProfile()
		cpf.HttpProfile.Endpoint, cpf.HttpProfile.Scheme = e.addr, "http"
		c, err := tckms.NewClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", cpf)
		if err != nil {
			t.Fatal(err)
		}
		req := tckms.NewEncryptRequest()
		req.KeyId, req.Plaintext = common.StringPtr("alias/x"), common.StringPtr(pt)
		r, err := c.Encrypt(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := *r.Response.KeyId; got != e.a {
			t.Errorf("response KeyId %s, want key A %s (B is %s)", got, e.a, e.b)
		}
		if got := e.blobKey(t, *r.Response.CiphertextBlob); got != e.a {
			t.Errorf("the blob is under %s, want key A %s (B is %s)", got, e.a, e.b)
		}
	})
}
