package wire

import (
	"context"
	"reflect"

	"github.com/p11kms/p11kms/provider"
)

// Authorize checks the access key's policy for one decoded request: the
// action, then every key the request touches — the key parameter as given
// (id, alias or ARN) and the key id it resolves to, and the key of a
// CiphertextBlob parameter. A refusal is Forbidden.NoPermission. Errors
// while resolving (unknown key, bad blob) are returned as the operation
// itself would return them.
func Authorize(ctx context.Context, s *provider.Service, key AccessKey, a Action, req any) error {
	if !key.Policy.AllowsAction(a.Name) {
		return provider.NewError(provider.CodeNoPermission, "the access key %s may not call %s", key.AccessKeyId, a.Name)
	}
	if matchAny(key.Policy.Keys, "*") {
		return nil
	}
	v := reflect.ValueOf(req).Elem()
	if a.KeyParam != "" {
		if ref := v.FieldByName(a.KeyParam).String(); ref != "" {
			id, err := s.ResolveKeyId(ctx, ref)
			if err != nil {
				return err
			}
			if !key.Policy.AllowsKey(ref, id) {
				return provider.NewError(provider.CodeNoPermission, "the access key %s may not use key %s", key.AccessKeyId, ref)
			}
		}
	}
	if a.BlobParam != "" {
		if blob := v.FieldByName(a.BlobParam).String(); blob != "" {
			id, err := s.BlobKeyId(ctx, blob)
			if err != nil {
				return err
			}
			if !key.Policy.AllowsKey(id) {
				return provider.NewError(provider.CodeNoPermission, "the access key %s may not use the key of this CiphertextBlob", key.AccessKeyId)
			}
		}
	}
	if a.Name == "DeleteAlias" || a.Name == "CreateAlias" || a.Name == "UpdateAlias" {
		if alias := v.FieldByName("AliasName").String(); alias != "" && !key.Policy.AllowsKey(alias) {
			return provider.NewError(provider.CodeNoPermission, "the access key %s may not change alias %s", key.AccessKeyId, alias)
		}
	}
	return nil
}
