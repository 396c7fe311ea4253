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
	// Visible, for a listing, points at the request's Visibility, which
	// authorization sets from the policy (left nil when it allows every key).
	Visible *provider.Visibility
}

// AuthorizeTouched checks the access key's policy for one request of the
// named action touching t: the action, the alias changed, then the key
// parameter as given (id, alias or ARN) and the key id it resolves to, and
// the key of the CiphertextBlob. A key is allowed when the policy allows
// the name the request gave, its id, or — when the request names it by id
// or by a blob — an alias that points to it now (so `alias/app-*` allows
// Decrypt of blobs of the keys alias/app-x names; an alias outside the
// policy stays refused even when it names such a key). A
// refusal is Forbidden.NoPermission; a key or alias outside the policy is
// refused the same way whether or not it exists (authorize before telling
// KeyNotFound/AliasNotFound), so a restricted key cannot probe names.
//
// The key is resolved once: when the policy limits keys, *t.Key is replaced
// by the key id that was checked, so the operation uses that key even if
// an alias is repointed before it runs; and *t.Visible is set so that a
// listing shows only what the policy allows. Other errors while resolving
// (a malformed reference, a bad blob) are returned as the operation itself
// would return them.
//
// The action is checked as a write (Policy.AllowsCall): ReadActions does
// not allow it; the pipeline checks each row by its own Action.Write.
func AuthorizeTouched(ctx context.Context, s *provider.Service, key AccessKey, action string, t Touched) error {
	return authorizeTouched(ctx, s, key, action, true, t)
}

// authorizeTouched is AuthorizeTouched for an action that is a write or a
// read.
func authorizeTouched(ctx context.Context, s *provider.Service, key AccessKey, action string, write bool, t Touched) error {
	p := &key.Policy
	if !p.AllowsCall(action, write) {
		return provider.NewError(provider.CodeNoPermission, "the access key %s may not call %s", key.AccessKeyId, action)
	}
	if matchAny(p.Keys, "*") {
		// Every key is allowed: which one the operation uses cannot
		// matter to the policy, and the operation resolves it (once).
		return nil
	}
	if t.Alias != "" && !p.AllowsKey(t.Alias) {
		return provider.NewError(provider.CodeNoPermission, "the access key %s may not change alias %s", key.AccessKeyId, provider.Clip(t.Alias, 160))
	}
	if t.Key != nil && *t.Key != "" {
		id, err := allowedRef(ctx, s, key, t.KeyParam, *t.Key)
		if err != nil {
			return err
		}
		if !t.KeyIdOnly && namesAlias(*t.Key) {
			*t.Key = id
		}
	}
	if t.Blob != "" {
		id, err := s.BlobKeyId(ctx, t.Blob)
		if err != nil {
			return err
		}
		if ok, err := allowsKeyNow(ctx, s, p, id); err != nil || !ok {
			return orRefused(err, "the access key %s may not use the key of this CiphertextBlob", key.AccessKeyId)
		}
	}
	if t.Visible != nil {
		*t.Visible = p.Visibility()
	}
	if afterAuthorize != nil {
		afterAuthorize(ctx)
	}
	return nil
}

// allowedRef resolves a key reference for a policy that limits keys and
// returns its key id if the policy allows it. A reference the policy does
// not allow by its own name is refused with the same error whether it names
// no key or a key outside the policy.
func allowedRef(ctx context.Context, s *provider.Service, key AccessKey, param, ref string) (string, error) {
	p := &key.Policy
	refused := provider.NewError(provider.CodeNoPermission, "the access key %s may not use key %s", key.AccessKeyId, provider.Clip(ref, 160))
	id, err := s.ResolveKey(ctx, param, ref)
	if err != nil {
		if code := provider.ErrorCode(err); p.AllowsKey(ref) || (code != provider.CodeKeyNotFound && code != provider.CodeAliasNotFound) {
			return "", err
		}
		return "", refused // existence is not told
	}
	// A key named by an alias is allowed by that alias or by its id, not
	// by its other aliases: those stay hidden from the policy's holder.
	ok := p.AllowsKey(ref, id)
	if !ok && !namesAlias(ref) {
		if ok, err = allowsKeyNow(ctx, s, p, id, ref); err != nil {
			return "", err
		}
	}
	if !ok {
		return "", refused
	}
	return id, nil
}

// allowsKeyNow reports whether the policy allows key id, given by the
// names the request used: by a name, by the id, or by an alias that points
// to the key now.
func allowsKeyNow(ctx context.Context, s *provider.Service, p *Policy, id string, names ...string) (bool, error) {
	if p.AllowsKey(append(names, id)...) {
		return true, nil
	}
	aliases, err := s.KeyAliases(ctx, id)
	if err != nil {
		return false, err
	}
	return p.AllowsKey(aliases...), nil
}

// orRefused is err, or (nil) a Forbidden.NoPermission with the message.
func orRefused(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return provider.NewError(provider.CodeNoPermission, format, args...)
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
