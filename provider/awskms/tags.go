package awskms

import (
	"slices"
	"strings"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// AWS's errors for tags: one it refuses, too many on a key.
const (
	CodeTag           = "TagException"
	CodeLimitExceeded = "LimitExceededException"
)

// tags is AWS's list of tags; tagMap checks it (unique keys, AWS's
// lengths, the aws: prefix reserved) and makes it the core's map.
func tagMap(param string, tags []tag) (map[string]string, error) {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		if strings.HasPrefix(t.TagKey, "aws:") {
			return nil, errorf(CodeTag, "%s: tag keys starting with aws: are reserved", param)
		}
		if _, dup := m[t.TagKey]; dup {
			return nil, errorf(CodeTag, "%s: the tag key %q is given twice", param, provider.Clip(t.TagKey, 64))
		}
		m[t.TagKey] = t.TagValue
	}
	if err := provider.CheckTags(param, m); err != nil {
		return nil, errorf(CodeTag, "%s", provider.AsError(err).Message)
	}
	return m, nil
}

type tagRequest struct {
	KeyId string `cli:"required" help:"key id or key ARN"`
	Tags  []tag  `cli:"required" help:"JSON list of {\"TagKey\":\"k\",\"TagValue\":\"v\"}: up to 50 per key, keys 1 to 128 characters, values up to 256; aws: is reserved"`
	tags  map[string]string
}

func (r *tagRequest) prepare(x refs) error {
	var err error
	if len(r.Tags) == 0 {
		return invalid("Tags", "is required: a list of {TagKey, TagValue}")
	}
	if r.tags, err = tagMap("Tags", r.Tags); err != nil {
		return err
	}
	return x.coreRef("KeyId", &r.KeyId)
}

type untagRequest struct {
	KeyId   string   `cli:"required" help:"key id or key ARN"`
	TagKeys []string `cli:"required" help:"JSON list of tag keys"`
}

func (r *untagRequest) prepare(x refs) error {
	if len(r.TagKeys) == 0 {
		return invalid("TagKeys", "is required: a list of tag keys")
	}
	if len(r.TagKeys) > provider.MaxTags {
		return errorf(CodeTag, "TagKeys: %d tag keys: at most %d", len(r.TagKeys), provider.MaxTags)
	}
	return x.coreRef("KeyId", &r.KeyId)
}

type listTagsRequest struct {
	KeyId  string `cli:"required" help:"key id or key ARN"`
	Limit  *int   `help:"1 to 1000 (default 100; a page holds at most 100)"`
	Marker string `help:"the NextMarker of the previous page"`
}

func (r *listTagsRequest) prepare(x refs) error { return x.coreRef("KeyId", &r.KeyId) }

type listTagsResponse struct {
	Tags       []tag
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func init() {
	register(map[string]*op{
		"TagResource": operation(func(r *tagRequest) wire.Touched { return keyParam(&r.KeyId) }, func(c *call, r *tagRequest) (any, error) {
			if _, err := c.kms.TagKey(c.ctx, &provider.TagKeyRequest{KeyId: r.KeyId, Tags: r.tags}); err != nil {
				return nil, tagError(err)
			}
			c.key(r.KeyId, "")
			return &empty{}, nil
		}).says("Add or replace a key's tags"),
		"UntagResource": operation(func(r *untagRequest) wire.Touched { return keyParam(&r.KeyId) }, func(c *call, r *untagRequest) (any, error) {
			if _, err := c.kms.UntagKey(c.ctx, &provider.UntagKeyRequest{KeyId: r.KeyId, TagKeys: r.TagKeys}); err != nil {
				return nil, err
			}
			c.key(r.KeyId, "")
			return &empty{}, nil
		}).says("Remove tags from a key"),
		"ListResourceTags": operation(func(r *listTagsRequest) wire.Touched { return keyParam(&r.KeyId) }, (*call).listTags).says("List a key's tags"),
	})
}

// tagError is the core's refusal of the tags as AWS's TagException
// (LimitExceededException for too many on the key).
func tagError(err error) error {
	if e := provider.AsError(err); e.Code == provider.CodeInvalidParameter && e.Param == "Tags" {
		if strings.Contains(e.Message, "would have") {
			return errorf(CodeLimitExceeded, "%s", e.Message)
		}
		return errorf(CodeTag, "%s", e.Message)
	}
	return err
}

func (c *call) listTags(r *listTagsRequest) (any, error) {
	off, limit, err := window(r.Limit, r.Marker)
	if err != nil {
		return nil, err
	}
	resp, err := c.kms.KeyTags(c.ctx, &provider.KeyIdRequest{KeyId: r.KeyId})
	if err != nil {
		return nil, err
	}
	c.key(resp.KeyId, "")
	all := make([]tag, 0, len(resp.Tags))
	for k, v := range resp.Tags {
		all = append(all, tag{TagKey: k, TagValue: v})
	}
	slices.SortFunc(all, func(a, b tag) int { return strings.Compare(a.TagKey, b.TagKey) })
	tags, next, err := slice(off, limit, func(number, size int) ([]tag, int, error) {
		from := min((number-1)*size, len(all))
		return all[from:min(from+size, len(all))], len(all), nil
	})
	if err != nil {
		return nil, err
	}
	return &listTagsResponse{Tags: append([]tag{}, tags...), NextMarker: next, Truncated: next != ""}, nil
}
