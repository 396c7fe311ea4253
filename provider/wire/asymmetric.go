package wire

import "github.com/p11kms/p11kms/provider"

// asymmetricActions are the asymmetric-key and key-import (BYOK) rows of
// the core's table (issue 21), appended to CoreActions. Each names its key
// by KeyId: the pipeline resolves and authorizes it like every other
// action's.
func asymmetricActions() []Action {
	type p = provider.Service
	return []Action{
		act("GetPublicKey", "Get an asymmetric key version's public key (PEM)", (*p).GetPublicKey,
			func(r *provider.GetPublicKeyRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricEncrypt", "Encrypt a short plaintext under an asymmetric key's public key", (*p).AsymmetricEncrypt,
			func(r *provider.AsymmetricEncryptRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricDecrypt", "Decrypt with an asymmetric key's private key, in the token", (*p).AsymmetricDecrypt,
			func(r *provider.AsymmetricDecryptRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricSign", "Sign a SHA-256 digest with an asymmetric key, in the token", (*p).AsymmetricSign,
			func(r *provider.AsymmetricSignRequest) Touched { return keyID(&r.KeyId) }),
		act("AsymmetricVerify", "Verify a signature over a SHA-256 digest", (*p).AsymmetricVerify,
			func(r *provider.AsymmetricVerifyRequest) Touched { return keyID(&r.KeyId) }),
		Writes(act("GetParametersForImport", "Get a wrapping public key and an import token for an EXTERNAL key", (*p).GetParametersForImport,
			func(r *provider.GetParametersForImportRequest) Touched { return keyID(&r.KeyId) })),
		Writes(act("ImportKeyMaterial", "Import key material wrapped under GetParametersForImport's public key", (*p).ImportKeyMaterial,
			func(r *provider.ImportKeyMaterialRequest) Touched { return keyID(&r.KeyId) })),
		Writes(act("DeleteKeyMaterial", "Delete an EXTERNAL key's imported material (it becomes PendingImport)", (*p).DeleteKeyMaterial,
			func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) })),
	}
}
