package tencent

import (
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// Tencent's key import (Type=2 keys, Origin EXTERNAL), as rows over the
// core's GetParametersForImport / ImportKeyMaterial / DeleteKeyMaterial.

// maxValidTo is the latest ValidTo Tencent accepts.
const maxValidTo = 2147443200

func init() {
	for name, a := range map[string]wire.Action{
		"GetParametersForImport":    wire.Writes(row(getParametersForImport, func(r *getParametersRequest) []wire.Touched { return key(&r.KeyId) })),
		"ImportKeyMaterial":         wire.Writes(row(importKeyMaterial, func(r *importMaterialRequest) []wire.Touched { return key(&r.KeyId) })),
		"DeleteImportedKeyMaterial": wire.Writes(onKey(deleteImportedKeyMaterial)),
	} {
		a.Name = name
		actions[name] = &a
	}
}

type getParametersRequest struct {
	KeyId             string `wire:"required"`
	WrappingAlgorithm string `wire:"required"`
	WrappingKeySpec   string `wire:"required"`
}

// check: Tencent wraps key material with RSA_2048 only.
func (r *getParametersRequest) check() error {
	if r.WrappingKeySpec != provider.KeySpecRSA2048 {
		return errorf(CodeInvalidParameterVal, "WrappingKeySpec %q: accepted RSA_2048", provider.Clip(r.WrappingKeySpec, 32))
	}
	return nil
}

func getParametersForImport(c *wire.Call, req *getParametersRequest) (any, error) {
	r, err := c.KMS.GetParametersForImport(c.Ctx, &provider.GetParametersForImportRequest{KeyId: req.KeyId,
		WrappingAlgorithm: req.WrappingAlgorithm, WrappingKeySpec: req.WrappingKeySpec})
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, "")
	return object{"KeyId": r.KeyId, "ImportToken": r.ImportToken, "PublicKey": r.PublicKey,
		"ParametersValidTo": unixTime(r.TokenExpireTime)}, nil
}

type importMaterialRequest struct {
	KeyId                string `wire:"required"`
	EncryptedKeyMaterial string `wire:"required"`
	ImportToken          string `wire:"required"`
	ValidTo              *uint64
}

func (r *importMaterialRequest) check() error {
	if r.ValidTo != nil && *r.ValidTo > maxValidTo {
		return errorf(CodeInvalidParameterVal, "ValidTo %d: accepted 0 (never) or a future Unix time up to %d", *r.ValidTo, maxValidTo)
	}
	return nil
}

func importKeyMaterial(c *wire.Call, req *importMaterialRequest) (any, error) {
	preq := &provider.ImportKeyMaterialRequest{KeyId: req.KeyId, EncryptedKeyMaterial: req.EncryptedKeyMaterial, ImportToken: req.ImportToken}
	if req.ValidTo != nil {
		preq.ValidTo = int64(*req.ValidTo) // at most maxValidTo (check)
	}
	r, err := c.KMS.ImportKeyMaterial(c.Ctx, preq)
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyIds())
	return object{}, nil
}

func deleteImportedKeyMaterial(c *wire.Call, ref string) (any, error) {
	r, err := c.KMS.DeleteKeyMaterial(c.Ctx, &provider.KeyIdRequest{KeyId: ref})
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyIds())
	return object{}, nil
}
