package wire

import "github.com/p11kms/p11kms/provider"

// The asymmetric-key and key-import actions (issue 21), added to Actions.
// Each names its key by KeyId: the pipeline resolves and authorizes it
// like every other action's.
func init() {
	type p = provider.Service
	for _, a := range []Action{
		act("GetPublicKey", (*p).GetPublicKey, func(r *provider.GetPublicKeyRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricEncrypt", (*p).AsymmetricEncrypt, func(r *provider.AsymmetricEncryptRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricDecrypt", (*p).AsymmetricDecrypt, func(r *provider.AsymmetricDecryptRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricSign", (*p).AsymmetricSign, func(r *provider.AsymmetricSignRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricVerify", (*p).AsymmetricVerify, func(r *provider.AsymmetricVerifyRequest) Touched { return keyID(&r.KeyId) }),
	} {
		Actions[a.Name] = a
	}
}

// The key-import (BYOK) actions.
func init() {
	type p = provider.Service
	for _, a := range []Action{
		act("GetParametersForImport", (*p).GetParametersForImport,
			func(r *provider.GetParametersForImportRequest) Touched { return keyID(&r.KeyId) }),
		act("ImportKeyMaterial", (*p).ImportKeyMaterial, func(r *provider.ImportKeyMaterialRequest) Touched { return keyID(&r.KeyId) }),
		act("DeleteKeyMaterial", (*p).DeleteKeyMaterial, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) }),
	} {
		Actions[a.Name] = a
	}
}
