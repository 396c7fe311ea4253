package awskms

import (
	"context"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

type aliasRequest struct {
	AliasName   string `cli:"required" help:"alias/<name>: letters, digits, / _ and -, up to 256 characters; alias/aws/ is reserved"`
	TargetKeyId string `cli:"required" help:"key id or key ARN (not an alias)"`
}

func (r *aliasRequest) prepare(x refs) error {
	if err := checkAliasName(r.AliasName); err != nil {
		return err
	}
	return x.coreRef("TargetKeyId", &r.TargetKeyId)
}

// aliasTouched: the alias changed, and the key it is to name (a key id
// or ARN, never another alias).
func aliasTouched(r *aliasRequest) wire.Touched {
	return wire.Touched{KeyParam: "TargetKeyId", Key: &r.TargetKeyId, KeyIdOnly: true, Alias: r.AliasName}
}

type deleteAliasRequest struct {
	AliasName string `cli:"required" help:"alias/<name>"`
}

func (r *deleteAliasRequest) prepare(refs) error { return checkAliasName(r.AliasName) }

type listAliasesRequest struct {
	KeyId  string `help:"only this key's aliases: key id, key ARN, alias/<name> or alias ARN"`
	Limit  *int   `help:"1 to 1000 (default 100; a page holds at most 100)"`
	Marker string `help:"the NextMarker of the previous page"`
	// visible is set by authorization: what the policy lets the caller see.
	visible provider.Visibility
}

func (r *listAliasesRequest) prepare(x refs) error { return x.optionalRef("KeyId", &r.KeyId) }

type aliasEntry struct {
	AliasName   string
	AliasArn    string
	TargetKeyId string
}

type listAliasesResponse struct {
	Aliases    []aliasEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func init() {
	register(map[string]*op{
		"CreateAlias": operation(aliasTouched, func(c *call, r *aliasRequest) (any, error) {
			return c.alias((*provider.Service).CreateAlias, r)
		}).says("Create an alias"),
		"UpdateAlias": operation(aliasTouched, func(c *call, r *aliasRequest) (any, error) {
			return c.alias((*provider.Service).UpdateAlias, r)
		}).says("Point an alias at another key"),
		"DeleteAlias": operation(func(r *deleteAliasRequest) wire.Touched { return wire.Touched{Alias: r.AliasName} },
			func(c *call, r *deleteAliasRequest) (any, error) {
				if _, err := c.kms.DeleteAlias(c.ctx, &provider.DeleteAliasRequest{AliasName: r.AliasName}); err != nil {
					return nil, err
				}
				return &empty{}, nil
			}).says("Delete an alias"),
		"ListAliases": operation(func(r *listAliasesRequest) wire.Touched {
			if r.KeyId == "" {
				return wire.Touched{Visible: &r.visible}
			}
			return wire.Touched{KeyParam: "KeyId", Key: &r.KeyId, Visible: &r.visible}
		}, (*call).listAliases).says("List aliases (of one key with KeyId)"),
	})
}

func (c *call) alias(do func(*provider.Service, context.Context, *provider.AliasRequest) (*provider.RequestIdResponse, error), r *aliasRequest) (any, error) {
	if _, err := do(c.kms, c.ctx, &provider.AliasRequest{AliasName: r.AliasName, KeyId: r.TargetKeyId}); err != nil {
		return nil, err
	}
	c.key(r.TargetKeyId, "")
	return &empty{}, nil
}

func (c *call) listAliases(r *listAliasesRequest) (any, error) {
	off, limit, err := window(r.Limit, r.Marker)
	if err != nil {
		return nil, err
	}
	aliases, next, err := slice(off, limit, func(number, size int) ([]provider.Alias, int, error) {
		var resp *provider.ListAliasesResponse
		var err error
		if r.KeyId != "" {
			resp, err = c.kms.ListAliasesByKeyId(c.ctx, &provider.ListAliasesByKeyIdRequest{KeyId: r.KeyId, PageNumber: &number, PageSize: &size, Visible: r.visible})
		} else {
			resp, err = c.kms.ListAliases(c.ctx, &provider.ListAliasesRequest{PageNumber: &number, PageSize: &size, Visible: r.visible})
		}
		if err != nil {
			return nil, 0, err
		}
		return resp.Aliases.Alias, resp.TotalCount, nil
	})
	if err != nil {
		return nil, err
	}
	out := &listAliasesResponse{Aliases: []aliasEntry{}, NextMarker: next, Truncated: next != ""}
	for _, a := range aliases {
		out.Aliases = append(out.Aliases, aliasEntry{AliasName: a.AliasName, AliasArn: c.refs.aliasArn(a.AliasName), TargetKeyId: a.KeyId})
	}
	return out, nil
}
