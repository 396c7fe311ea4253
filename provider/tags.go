package provider

import (
	"context"
	"maps"
	"unicode/utf8"
)

// Tag limits, as AWS KMS states them: at most MaxTags tags per key, a tag
// key of 1 to MaxTagKeyChars characters, a value of at most
// MaxTagValueChars.
const (
	MaxTags          = 50
	MaxTagKeyChars   = 128
	MaxTagValueChars = 256
)

// TagKeyRequest adds tags to a key, replacing the values of tag keys it
// has already.
type TagKeyRequest struct {
	KeyId string
	Tags  map[string]string
}

// UntagKeyRequest removes tags (by tag key) from a key; a tag key it does
// not have is no error.
type UntagKeyRequest struct {
	KeyId   string
	TagKeys []string
}

// KeyTagsResponse is a key's tags.
type KeyTagsResponse struct {
	KeyId     string
	Tags      map[string]string
	RequestId string
}

// CheckTags validates tags as a request gives them (param names the
// parameter): each key 1 to MaxTagKeyChars characters, each value at most
// MaxTagValueChars, at most MaxTags.
func CheckTags(param string, tags map[string]string) error {
	if len(tags) > MaxTags {
		return InvalidParam(param, "%d tags: at most %d per key", len(tags), MaxTags)
	}
	for k, v := range tags {
		if n := utf8.RuneCountInString(k); n < 1 || n > MaxTagKeyChars || !utf8.ValidString(k) {
			return InvalidParam(param, "tag key %q: accepted 1 to %d characters of UTF-8", Clip(k, 64), MaxTagKeyChars)
		}
		if utf8.RuneCountInString(v) > MaxTagValueChars || !utf8.ValidString(v) {
			return InvalidParam(param, "the value of tag %q: accepted up to %d characters of UTF-8", Clip(k, 64), MaxTagValueChars)
		}
	}
	return nil
}

// TagKey adds or replaces tags of a key (not one pending deletion); the
// key then has at most MaxTags.
func (s *Service) TagKey(ctx context.Context, req *TagKeyRequest) (*RequestIdResponse, error) {
	if err := CheckTags("Tags", req.Tags); err != nil {
		return nil, err
	}
	return s.changeTags(ctx, req.KeyId, func(tags map[string]string) error {
		maps.Copy(tags, req.Tags)
		if len(tags) > MaxTags {
			return InvalidParam("Tags", "the key would have %d tags: at most %d", len(tags), MaxTags)
		}
		return nil
	})
}

// UntagKey removes tags of a key (not one pending deletion).
func (s *Service) UntagKey(ctx context.Context, req *UntagKeyRequest) (*RequestIdResponse, error) {
	if len(req.TagKeys) > MaxTags {
		return nil, InvalidParam("TagKeys", "%d tag keys: at most %d", len(req.TagKeys), MaxTags)
	}
	return s.changeTags(ctx, req.KeyId, func(tags map[string]string) error {
		for _, k := range req.TagKeys {
			delete(tags, k)
		}
		return nil
	})
}

func (s *Service) changeTags(ctx context.Context, ref string, change func(map[string]string) error) (*RequestIdResponse, error) {
	m, err := s.resolve(ctx, "KeyId", ref)
	if err != nil {
		return nil, err
	}
	_, err = s.updateKey(ctx, m.KeyId, func(m *keyMeta) error {
		if m.KeyState == StatePendingDeletion {
			return NewError(CodePendingDeletion, "the key %s is pending deletion", m.KeyId)
		}
		tags := maps.Clone(m.Tags)
		if tags == nil {
			tags = map[string]string{}
		}
		if err := change(tags); err != nil {
			return err
		}
		m.Tags = tags
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &RequestIdResponse{RequestId: RequestID(ctx)}, nil
}

// KeyTags returns a key's tags (any state).
func (s *Service) KeyTags(ctx context.Context, req *KeyIdRequest) (*KeyTagsResponse, error) {
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	tags := maps.Clone(m.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	return &KeyTagsResponse{KeyId: m.KeyId, Tags: tags, RequestId: RequestID(ctx)}, nil
}
