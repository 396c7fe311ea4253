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
	aliasPattern = regexp.MustCompile(`^alias/[A-Za-z0-9_/:-]+$`)
)

// checkKeyID validates a bare key id.
func checkKeyID(param, id string) error {
	if !keyIDPattern.MatchString(id) {
		return InvalidParam(param, "%q is not a key id: accepted a key id (letters, digits, - and _, up to 128), alias/<name>, or acs:kms:<region>:<account>:key/<id>", truncate(id, 64))
	}
	return nil
}

// checkAliasName validates an alias name as Alibaba does.
func checkAliasName(name string) error {
	switch {
	case !strings.HasPrefix(name, "alias/"):
		return InvalidParam("AliasName", "%q must start with alias/", truncate(name, 64))
	case len(name) > 255:
		return InvalidParam("AliasName", "%d characters: at most 255", len(name))
	case !aliasPattern.MatchString(name):
		return InvalidParam("AliasName", "%q: after alias/ only letters, digits, _ - / and : are accepted", truncate(name, 64))
	case strings.HasPrefix(name, "alias/acs"):
		return InvalidParam("AliasName", "names starting with alias/acs are reserved")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseKeyRef splits a KeyId parameter into a key id or an alias name.
func parseKeyRef(param, ref string) (keyID, alias string, err error) {
	if ref == "" {
		return "", "", InvalidParam(param, "is required: a key id, alias/<name> or an ARN")
	}
	if strings.HasPrefix(ref, "acs:kms:") {
		parts := strings.SplitN(ref, ":", 5)
		if len(parts) != 5 {
			return "", "", InvalidParam(param, "ARN %q: accepted acs:kms:<region>:<account>:key/<id> or acs:kms:<region>:<account>:alias/<name>", truncate(ref, 80))
		}
		res := parts[4]
		switch {
		case strings.HasPrefix(res, "key/"):
			ref = strings.TrimPrefix(res, "key/")
		case strings.HasPrefix(res, "alias/"):
			ref = res
		default:
			return "", "", InvalidParam(param, "ARN %q names neither key/<id> nor alias/<name>", truncate(ref, 80))
		}
	}
	if strings.HasPrefix(ref, "alias/") {
		if err := checkAliasName(ref); err != nil {
			e := err.(*Error)
			e.Param = param
			return "", "", e
		}
		return "", ref, nil
	}
	if err := checkKeyID(param, ref); err != nil {
		return "", "", err
	}
	return ref, "", nil
}

// resolve turns a KeyId parameter into the key's metadata.
func (s *Service) resolve(ctx context.Context, param, ref string) (*keyMeta, error) {
	keyID, alias, err := parseKeyRef(param, ref)
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
	}
	return Internal("key state", errors.New("unknown key state "+m.KeyState))
}

// ResolveKeyId returns the key id a KeyId parameter (id, alias or ARN)
// names, for access policies. It fails as the operations would.
func (s *Service) ResolveKeyId(ctx context.Context, ref string) (string, error) {
	m, err := s.resolve(ctx, "KeyId", ref)
	if err != nil {
		return "", err
	}
	return m.KeyId, nil
}
