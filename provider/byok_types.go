package provider

// GetParametersForImportRequest asks for a wrapping public key and an
// import token for an EXTERNAL key.
type GetParametersForImportRequest struct {
	KeyId             string `cli:"required" help:"key id, alias or ARN of a key with Origin EXTERNAL"`
	WrappingAlgorithm string `cli:"required" help:"RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 (with RSA_2048), SM2PKE (with EC_SM2)"`
	WrappingKeySpec   string `cli:"required" help:"RSA_2048 or EC_SM2"`
}

// GetParametersForImportResponse is the wrapping public key (base64 DER
// SubjectPublicKeyInfo) and the ImportToken, valid until TokenExpireTime.
type GetParametersForImportResponse struct {
	KeyId           string
	ImportToken     string
	PublicKey       string
	TokenExpireTime string
	RequestId       string
}

// ImportKeyMaterialRequest imports key material wrapped under the public
// key of an import token. ValidTo is the core's neutral name (Alibaba's
// KeyMaterialExpireUnix, Tencent's and AWS's ValidTo).
type ImportKeyMaterialRequest struct {
	KeyId                string `cli:"required" help:"key id, alias or ARN of the key the ImportToken was issued for"`
	EncryptedKeyMaterial string `cli:"required" help:"base64: the 32-byte key material encrypted under GetParametersForImport's PublicKey with its WrappingAlgorithm (SM2PKE: C1C3C2)"`
	ImportToken          string `cli:"required" help:"the ImportToken of the same GetParametersForImport call"`
	ValidTo              int64  `help:"Unix time in seconds when the material expires, in the future; 0: never"`
}

// KeyIds is the key the import token was issued for.
func (r *GetParametersForImportResponse) KeyIds() (keyID, versionID string) { return r.KeyId, "" }
