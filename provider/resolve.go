package provider

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/p11kms/p11kms/hsm"
)

var (
	keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	aliasPattern = regexp.MustCompile(`^alias/[A-Za-z0-9_/-]+$`)
)

// checkKeyID validates a bare key id.
func checkKeyID(param, id string) error {
	if !keyIDPattern.MatchString(id) {
		return InvalidParam(param, "%q is not a key id: accepted a key id (letters, digits, - and _, up to 128), alias/<name>, or acs:kms:<region>:<account>:key/<id>", Clip(id, 64))
	}
	return nil
}

// checkAliasName validates an alias name as Alibaba does; param names the
// parameter that holds it (AliasName, or KeyId for alias/<name>).
func checkAliasName(param, name string) error {
	switch {
	case !strings.HasPrefix(name, "alias/"):
		return InvalidParam(param, "%q must start with alias/", Clip(name, 64))
	case len(name) > 255:
		return InvalidParam(param, "%d characters: at most 255", len(name))
	case !aliasPattern.MatchString(name):
		return InvalidParam(param, "%q: after alias/ only letters, digits, _ - and / are accepted", Clip(name, 64))
	case strings.HasPrefix(name, "alias/acs"):
		return InvalidParam(param, "names starting with alias/acs are reserved")
	}
	return nil
}

// Clip is the one helper for client-supplied text that is logged, audited
// or echoed in a message, by the core and by every wire dialect: at most n
// bytes (then "…"), and anything but printable ASCII replaced by '?', so
// that neither a log line nor a message can be forged or blown up.
func Clip(s string, n int) string {
	b := make([]byte, 0, min(len(s), n)+3)
	for i := 0; i < len(s); i++ {
		if len(b) >= n {
			return string(b) + "…"
		}
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}

// parseKeyRef splits a KeyId parameter into a key id or an alias name. An
// ARN must name this service's region and account: one naming another is
// Forbidden.KeyNotFound (Forbidden.AliasNotFound for an alias ARN), as the
// key is not here, with the region and account this service has.
func (s *Service) parseKeyRef(param, ref string) (keyID, alias string, err error) {
	if ref == "" {
		return "", "", InvalidParam(param, "is required: a key id, alias/<name> or an ARN")
	}
	if strings.HasPrefix(ref, "acs:kms:") {
		if ref, err = s.arnResource(param, ref); err != nil {
			return "", "", err
		}
	}
	if strings.HasPrefix(ref, "alias/") {
		if err := checkAliasName(param, ref); err != nil {
			return "", "", err
		}
		return "", ref, nil
	}
	if err := checkKeyID(param, ref); err != nil {
		return "", "", err
	}
	return ref, "", nil
}

// arnResource returns the key/<id> part of a key ARN as the bare id, or the
// alias/<name> part of an alias ARN, checking the ARN's region and account.
func (s *Service) arnResource(param, arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) != 5 {
		return "", InvalidParam(param, "ARN %q: accepted acs:kms:<region>:<account>:key/<id> or acs:kms:<region>:<account>:alias/<name>", Clip(arn, 80))
	}
	region, account, res := parts[2], parts[3], parts[4]
	code := CodeKeyNotFound
	switch {
	case strings.HasPrefix(res, "key/"):
	case strings.HasPrefix(res, "alias/"):
		code = CodeAliasNotFound
	default:
		return "", InvalidParam(param, "ARN %q names neither key/<id> nor alias/<name>", Clip(arn, 80))
	}
	if region != s.opt.Region || account != s.opt.Account {
		return "", NewError(code, "%s: the ARN %s names region %q and account %q; this KMS serves region %s, account %s only",
			param, Clip(arn, 160), Clip(region, 40), Clip(account, 40), s.opt.Region, s.opt.Account)
	}
	return strings.TrimPrefix(res, "key/"), nil
}

// resolve turns a KeyId parameter into the key's metadata.
func (s *Service) resolve(ctx context.Context, param, ref string) (*keyMeta, error) {
	keyID, alias, err := s.parseKeyRef(param, ref)
	if err != nil {
		return nil, err
	}
	if alias != "" {
		if keyID, err = s.readAlias(ctx, alias); err != nil {
			return nil, err
		}
	}
	return s.readKey(ctx, keyID)
}

// loadAlias reads an alias object.
func (s *Service) loadAlias(ctx context.Context, name string) (*aliasMeta, *hsm.DataObject, error) {
	obj, err := s.tok.FindData(ctx, appAliases, name)
	if errors.Is(err, hsm.ErrNotFound) {
		return nil, nil, NewError(CodeAliasNotFound, "the alias %s does not exist", name)
	}
	if err != nil {
		return nil, nil, Internal("reading alias", err)
	}
	var a aliasMeta
	if err := json.Unmarshal(obj.Value, &a); err != nil {
		return nil, nil, Internal("decoding alias", err)
	}
	return &a, obj, nil
}

// usable refuses keys that are not Enabled.
func usable(m *keyMeta) error {
	switch m.KeyState {
	case StateEnabled:
		return nil
	case StateDisabled:
		return NewError(CodeDisabled, "the key %s is disabled", m.KeyId)
	case StatePendingDeletion:
		return NewError(CodePendingDeletion, "the key %s is pending deletion", m.KeyId)
	case StatePendingImport:
		return pendingImport(m.KeyId)
	}
	return Internal("key state", errors.New("unknown key state "+m.KeyState))
}

// ResolveKeyId returns the key id a KeyId parameter (id, alias or ARN)
// names, for access policies. It fails as the operations would.
func (s *Service) ResolveKeyId(ctx context.Context, ref string) (string, error) {
	return s.ResolveKey(ctx, "KeyId", ref)
}

// ResolveKey returns the key id that a key reference (id, alias or ARN)
// names; param is the parameter holding it, named in errors. The wire
// pipeline resolves a request's key once with it and calls the operation
// with the id, so that the key authorized is the key used.
func (s *Service) ResolveKey(ctx context.Context, param, ref string) (string, error) {
	m, err := s.resolve(ctx, param, ref)
	if err != nil {
		return "", err
	}
	return m.KeyId, nil
}
