package wire

import (
	"context"
	"strings"

	"github.com/p11kms/p11kms/provider"
)

// Touched is what one decoded request touches, for its authorization: the
// fields of the request that name keys. It points into the request, so
// that authorization can make the request use the key it checked.
type Touched struct {
	// KeyParam is the wire name of the key parameter ("KeyId",
	// "DestinationKeyId"); Key points at its value (a key id, alias or
	// ARN), or is nil when the action names no key.
	KeyParam string
	Key      *string
	// KeyIdOnly marks a key parameter that takes a key id or key ARN only
	// (the target of an alias): it is checked, never replaced, so that the
	// operation still refuses an alias there.
	KeyIdOnly bool
	// Blob is a CiphertextBlob whose key is checked, or "".
	Blob string
	// Alias is an alias the request creates, repoints or deletes, or "".
	Alias string
}

// AuthorizeTouched checks the access key's policy for one request of the
// named action touching t: the action, then the key parameter as given (id,
// alias or ARN) and the key id it resolves to, the key of the
// CiphertextBlob, and the alias changed. A refusal is Forbidden.NoPermission.
//
// The key is resolved once: when the policy limits keys, *t.Key is replaced
// by the key id that was checked, so the operation uses that key even if
// an alias is repointed before it runs. Errors while resolving (unknown
// key, bad blob) are returned as the operation itself would return them.
func AuthorizeTouched(ctx context.Context, s *provider.Service, key AccessKey, action string, t Touched) error {
	if !key.Policy.AllowsAction(action) {
		return provider.NewError(provider.CodeNoPermission, "the access key %s may not call %s", key.AccessKeyId, action)
	}
	if matchAny(key.Policy.Keys, "*") {
		// Every key is allowed: which one the operation uses cannot
		// matter to the policy, and the operation resolves it (once).
		return nil
	}
	if t.Key != nil && *t.Key != "" {
		ref := *t.Key
		id, err := s.ResolveKey(ctx, t.KeyParam, ref)
		if err != nil {
			return err
		}
		if !key.Policy.AllowsKey(ref, id) {
			return provider.NewError(provider.CodeNoPermission, "the access key %s may not use key %s", key.AccessKeyId, ref)
		}
		if !t.KeyIdOnly && namesAlias(ref) {
			*t.Key = id
		}
	}
	if t.Blob != "" {
		id, err := s.BlobKeyId(ctx, t.Blob)
		if err != nil {
			return err
		}
		if !key.Policy.AllowsKey(id) {
			return provider.NewError(provider.CodeNoPermission, "the access key %s may not use the key of this CiphertextBlob", key.AccessKeyId)
		}
	}
	if t.Alias != "" && !key.Policy.AllowsKey(t.Alias) {
		return provider.NewError(provider.CodeNoPermission, "the access key %s may not change alias %s", key.AccessKeyId, t.Alias)
	}
	if afterAuthorize != nil {
		afterAuthorize(ctx)
	}
	return nil
}

// namesAlias reports whether a key reference is an alias (alias/<name> or
// an alias ARN), whose target can change between two reads; a key id or
// key ARN always names the same key.
func namesAlias(ref string) bool {
	return strings.HasPrefix(ref, "alias/") || (strings.HasPrefix(ref, "acs:kms:") && strings.Contains(ref, ":alias/"))
}

// afterAuthorize, when set (only by this package's tests, through
// export_test.go), runs between a request's authorization and its call.
var afterAuthorize func(ctx context.Context)
