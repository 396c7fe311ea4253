package provider

// GetPublicKeyRequest names an asymmetric key's version.
type GetPublicKeyRequest struct {
	KeyId        string `cli:"required" help:"key id, alias or ARN of an asymmetric key"`
	KeyVersionId string `cli:"required" help:"the key version (a UUID)"`
	DryRun       bool   `help:"validate only"`
}

// GetPublicKeyResponse is the version's public key, as PEM
// (SubjectPublicKeyInfo).
type GetPublicKeyResponse struct {
	KeyId        string
	KeyVersionId string
	PublicKey    string
	RequestId    string
}

// AsymmetricEncryptRequest encrypts a short plaintext under an ENCRYPT/DECRYPT
// asymmetric key's public half.
type AsymmetricEncryptRequest struct {
	KeyId        string `cli:"required" help:"key id, alias or ARN of an asymmetric ENCRYPT/DECRYPT key"`
	KeyVersionId string `cli:"required" help:"the key version (a UUID)"`
	Algorithm    string `cli:"required" help:"RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 (RSA keys), SM2PKE (EC_SM2 keys)"`
	Plaintext    string `cli:"required" help:"base64; at most 214 (OAEP-SHA-1) or 190 (OAEP-SHA-256) bytes for RSA_2048, more for larger keys; at most 1024 for SM2PKE"`
	DryRun       bool   `help:"validate only"`
}

// AsymmetricEncryptResponse is the ciphertext.
type AsymmetricEncryptResponse struct {
	KeyId          string
	KeyVersionId   string
	CiphertextBlob string
	RequestId      string
}

// AsymmetricDecryptRequest decrypts a ciphertext with an asymmetric key's
// private half, inside the token. (The fields are the core's neutral
// names; each dialect maps its own: Alibaba's CiphertextBlob, Tencent's
// Ciphertext.)
type AsymmetricDecryptRequest struct {
	KeyId        string `cli:"required" help:"key id, alias or ARN of an asymmetric ENCRYPT/DECRYPT key"`
	KeyVersionId string `cli:"required" help:"the key version (a UUID)"`
	Algorithm    string `cli:"required" help:"RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 (RSA keys), SM2PKE (EC_SM2 keys, C1C3C2)"`
	Ciphertext   string `cli:"required" help:"base64 ciphertext"`
	DryRun       bool   `help:"validate only"`
}

// AsymmetricDecryptResponse is the plaintext.
type AsymmetricDecryptResponse struct {
	KeyId        string
	KeyVersionId string
	Plaintext    string
	RequestId    string
}

// AsymmetricSignRequest signs a SHA-256 digest with a SIGN/VERIFY key.
type AsymmetricSignRequest struct {
	KeyId        string `cli:"required" help:"key id, alias or ARN of an asymmetric SIGN/VERIFY key"`
	KeyVersionId string `cli:"required" help:"the key version (a UUID)"`
	Algorithm    string `cli:"required" help:"RSA_PSS_SHA_256, RSA_PKCS1_SHA_256 (RSA keys), ECDSA_SHA_256 (EC_P256, EC_P256K keys)"`
	Digest       string `cli:"required" help:"base64 SHA-256 digest of the message (32 bytes)"`
	DryRun       bool   `help:"validate only"`
}

// AsymmetricSignResponse is the signature (Value, base64; ECDSA in DER).
type AsymmetricSignResponse struct {
	KeyId        string
	KeyVersionId string
	Value        string
	RequestId    string
}

// AsymmetricVerifyRequest checks a signature over a SHA-256 digest
// (Alibaba's Value, Tencent's SignatureValue).
type AsymmetricVerifyRequest struct {
	KeyId        string `cli:"required" help:"key id, alias or ARN of an asymmetric SIGN/VERIFY key"`
	KeyVersionId string `cli:"required" help:"the key version (a UUID)"`
	Algorithm    string `cli:"required" help:"RSA_PSS_SHA_256, RSA_PKCS1_SHA_256 (RSA keys), ECDSA_SHA_256 (EC_P256, EC_P256K keys)"`
	Digest       string `cli:"required" help:"base64 SHA-256 digest of the message (32 bytes)"`
	Signature    string `cli:"required" help:"base64 signature (ECDSA in DER)"`
	DryRun       bool   `help:"validate only"`
}

// AsymmetricVerifyResponse says whether the signature verifies.
type AsymmetricVerifyResponse struct {
	KeyId        string
	KeyVersionId string
	Value        bool
	RequestId    string
}

// KeyIds name the key and version each asymmetric operation used, for the
// wire record (the audit line's KeyId is the key id, never the alias or
// ARN the request named).
func (r *GetPublicKeyResponse) KeyIds() (keyID, versionID string) { return r.KeyId, r.KeyVersionId }

// KeyIds are the key and version the plaintext was encrypted under.
func (r *AsymmetricEncryptResponse) KeyIds() (keyID, versionID string) {
	return r.KeyId, r.KeyVersionId
}

// KeyIds are the key and version that decrypted.
func (r *AsymmetricDecryptResponse) KeyIds() (keyID, versionID string) {
	return r.KeyId, r.KeyVersionId
}

// KeyIds are the key and version that signed.
func (r *AsymmetricSignResponse) KeyIds() (keyID, versionID string) { return r.KeyId, r.KeyVersionId }

// KeyIds are the key and version the signature was checked with.
func (r *AsymmetricVerifyResponse) KeyIds() (keyID, versionID string) {
	return r.KeyId, r.KeyVersionId
}
