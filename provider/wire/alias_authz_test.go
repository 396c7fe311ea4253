package wire_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// Tencent's UpdateAlias replaces the key's alias: the alias it deletes is
// authorized too. An access key allowed the key and the new alias, not
// the old one, is refused, and nothing changes.
func TestTencentUpdateAliasAuthorizesTheAliasItReplaces(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	ctx := context.Background()
	k, err := kms.CreateKey(ctx, &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := k.KeyMetadata.KeyId
	if _, err := kms.CreateAlias(ctx, &provider.AliasRequest{AliasName: "alias/old", KeyId: id}); err != nil {
		t.Fatal(err)
	}
	c := tencentClient(t, kms, wire.Policy{Actions: []string{"UpdateAlias"}, Keys: []string{id, "alias/new"}})
	req := tckms.NewUpdateAliasRequest()
	req.KeyId, req.Alias = common.StringPtr(id), common.StringPtr("new")
	_, err = c.UpdateAlias(req)
	var se *tcerr.TencentCloudSDKError
	if !errors.As(err, &se) || se.Code != "UnauthorizedOperation" || !strings.Contains(se.Message, "alias/old") {
		t.Fatalf("UpdateAlias replacing an alias the key may not change: %v", err)
	}
	if got, err := kms.ResolveKeyId(ctx, "alias/old"); err != nil || got != id {
		t.Errorf("alias/old after the refusal: %q %v", got, err)
	}
	if _, err := kms.ResolveKeyId(ctx, "alias/new"); provider.ErrorCode(err) != provider.CodeAliasNotFound {
		t.Errorf("alias/new was created: %v", err)
	}
}
