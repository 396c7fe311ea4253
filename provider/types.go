package provider

import "github.com/p11kms/p11kms/wrap"

// KeyMetadata describes a CMK as DescribeKey returns it (all strings, as the
// Alibaba SDKs parse them).
type KeyMetadata struct {
	KeyId              string
	Arn                string
	CreationDate       string
	Creator            string
	Description        string
	KeySpec            string
	KeyUsage           string
	KeyState           string
	Origin             string
	ProtectionLevel    string
	PrimaryKeyVersion  string
	AutomaticRotation  string
	DeleteDate         string
	LastRotationDate   string
	MaterialExpireTime string
	NextRotationDate   string
	RotationInterval   string
}

// CreateKeyRequest creates a CMK.
type CreateKeyRequest struct {
	KeySpec                 string `help:"Aliyun_AES_256 (default), RSA_2048, RSA_3072, RSA_4096, EC_P256, EC_P256K, EC_SM2"`
	KeyUsage                string `help:"ENCRYPT/DECRYPT (default; RSA and EC_SM2 keys) or SIGN/VERIFY (RSA, EC_P256, EC_P256K keys)"`
	Origin                  string `help:"Aliyun_KMS (default: the key material is made in the token) or EXTERNAL (Aliyun_AES_256 only: imported with GetParametersForImport and ImportKeyMaterial)"`
	Description             string `help:"free text, up to 8192 characters"`
	EnableAutomaticRotation bool   `help:"rotate the key every RotationInterval"`
	RotationInterval        string `help:"with EnableAutomaticRotation: 7 to 365 days, as an integer with a unit d, h, m or s (30d, 168h, 10080m, 604800s)"`
	// KeyId fixes the new key's id (seeded test mode); empty means a new UUID.
	KeyId string `cli:"-"`
	// Tags are the new key's tags (CheckTags), written with it (AWS's
	// CreateKey Tags).
	Tags map[string]string `cli:"-"`
}

// KeyResponse returns a key's metadata.
type KeyResponse struct {
	KeyMetadata KeyMetadata
	RequestId   string
}

// KeyIdRequest names a key: its id, an alias (alias/name) or an ARN. Like
// the Alibaba API's DescribeKey, EnableKey, DisableKey, CancelKeyDeletion and
// CreateKeyVersion, it has no DryRun (the API defines DryRun only for the
// cryptographic actions).
type KeyIdRequest struct {
	KeyId string `cli:"required" help:"key id, alias/<name>, or acs:kms:<region>:<account>:key/<id> or .../alias/<name>"`
}

// RequestIdResponse is the response of operations that return nothing else.
// The key it changed, where the operation sets it, is for the wire record
// only (KeyIds), not part of the answer.
type RequestIdResponse struct {
	RequestId string
	keyID     string
}

// KeyIds is the key the operation changed ("" where it does not say).
func (r *RequestIdResponse) KeyIds() (keyID, versionID string) { return r.keyID, "" }

// ListKeysRequest pages through keys. In every listing a nil PageNumber or
// PageSize is absent (the defaults apply); a given 0 is refused.
type ListKeysRequest struct {
	PageNumber *int       `help:"1 or more (default 1)"`
	PageSize   *int       `help:"1 to 100 (default 10)"`
	Visible    Visibility `cli:"-" json:"-"`
}

// Visibility, when set on a listing request, limits the listing (and its
// TotalCount) to what it allows: Visibility(keyID, "") asks about a key by
// its id, Visibility(keyID, alias) about one alias of it; a key is listed
// when its id or any of its aliases is allowed, an alias when it is. It is
// never a wire parameter: the wire pipeline's authorization sets it from
// the access key's policy (nil: everything is listed).
type Visibility func(keyID, alias string) bool

// KeyRef is one key in a listing.
type KeyRef struct {
	KeyId  string
	KeyArn string
}

// ListKeysResponse is one page of keys.
type ListKeysResponse struct {
	Keys       struct{ Key []KeyRef }
	TotalCount int
	PageNumber int
	PageSize   int
	RequestId  string
}

// ScheduleKeyDeletionRequest schedules a key's destruction.
type ScheduleKeyDeletionRequest struct {
	KeyId               string `cli:"required" help:"key id, alias or ARN"`
	PendingWindowInDays int    `cli:"required" help:"7 to 366"`
	// NotEnabled refuses an Enabled key (an error wrapping ErrKeyEnabled),
	// checked in the same metadata write as the change: for an API whose
	// keys must be disabled before their deletion is scheduled (Tencent's).
	NotEnabled bool `cli:"-" json:"-"`
}

// UpdateRotationPolicyRequest changes automatic rotation.
type UpdateRotationPolicyRequest struct {
	KeyId                   string `cli:"required" help:"key id, alias or ARN"`
	EnableAutomaticRotation bool   `help:"enable automatic rotation"`
	RotationInterval        string `help:"with EnableAutomaticRotation (required then): 7 to 365 days, as an integer with a unit d, h, m or s (30d, 168h, 10080m, 604800s)"`
}

// KeyVersion describes one version of a key.
type KeyVersion struct {
	KeyId        string
	KeyVersionId string
	CreationDate string
}

// CreateKeyVersionResponse names the new primary version.
type CreateKeyVersionResponse struct {
	KeyVersion KeyVersion
	RequestId  string
}

// ListKeyVersionsRequest pages through a key's versions.
type ListKeyVersionsRequest struct {
	KeyId      string `cli:"required" help:"key id, alias or ARN"`
	PageNumber *int   `help:"1 or more (default 1)"`
	PageSize   *int   `help:"1 to 100 (default 10)"`
}

// ListKeyVersionsResponse is one page of versions.
type ListKeyVersionsResponse struct {
	KeyVersions struct{ KeyVersion []KeyVersion }
	TotalCount  int
	PageNumber  int
	PageSize    int
	RequestId   string
}

// DescribeKeyVersionRequest names one version.
type DescribeKeyVersionRequest struct {
	KeyId        string `cli:"required" help:"key id, alias or ARN"`
	KeyVersionId string `cli:"required" help:"version id"`
}

// DescribeKeyVersionResponse describes one version.
type DescribeKeyVersionResponse struct {
	KeyVersion KeyVersion
	RequestId  string
}

// AliasRequest creates or repoints an alias.
type AliasRequest struct {
	AliasName string `cli:"required" help:"alias/<name>: letters, digits, _ - and /, up to 255 characters"`
	KeyId     string `cli:"required" help:"key id or ARN (not an alias)"`
}

// DeleteAliasRequest deletes an alias.
type DeleteAliasRequest struct {
	AliasName string `cli:"required" help:"alias/<name>"`
}

// ListAliasesRequest pages through aliases.
type ListAliasesRequest struct {
	PageNumber *int       `help:"1 or more (default 1)"`
	PageSize   *int       `help:"1 to 100 (default 10)"`
	Visible    Visibility `cli:"-" json:"-"`
}

// ListAliasesByKeyIdRequest pages through one key's aliases.
type ListAliasesByKeyIdRequest struct {
	KeyId      string     `cli:"required" help:"key id, alias or ARN"`
	PageNumber *int       `help:"1 or more (default 1)"`
	PageSize   *int       `help:"1 to 100 (default 10)"`
	Visible    Visibility `cli:"-" json:"-"`
}

// Alias is one alias.
type Alias struct {
	AliasName string
	AliasArn  string
	KeyId     string
}

// ListAliasesResponse is one page of aliases.
type ListAliasesResponse struct {
	Aliases    struct{ Alias []Alias }
	TotalCount int
	PageNumber int
	PageSize   int
	RequestId  string
}

// GenerateDataKeyRequest asks for a data key under a CMK. With an Exporter
// (a dialect's public-key parameters, parsed by the dialect: Tencent's
// EncryptionPublicKey) the returned Plaintext is the data key encrypted
// under that public key. A nil NumberOfBytes is absent (KeySpec decides); a
// given 0 is refused.
type GenerateDataKeyRequest struct {
	KeyId             string                 `cli:"required" help:"key id, alias or ARN"`
	KeySpec           string                 `help:"AES_256 or AES_128 (NumberOfBytes wins)"`
	NumberOfBytes     *int                   `help:"1 to 1024 (default 32)"`
	EncryptionContext wrap.EncryptionContext `help:"JSON object of strings"`
	DryRun            bool                   `help:"validate only"`
	// Exporter, if set, is the public key the Plaintext is returned under.
	Exporter *PublicKeyExporter `cli:"-" json:"-"`
}

// GenerateDataKeyWithoutPlaintextRequest asks for a data key returned only
// under the CMK: GenerateDataKey's parameters without an Exporter.
type GenerateDataKeyWithoutPlaintextRequest struct {
	KeyId             string                 `cli:"required" help:"key id, alias or ARN"`
	KeySpec           string                 `help:"AES_256 or AES_128 (NumberOfBytes wins)"`
	NumberOfBytes     *int                   `help:"1 to 1024 (default 32)"`
	EncryptionContext wrap.EncryptionContext `help:"JSON object of strings"`
	DryRun            bool                   `help:"validate only"`
}

// GenerateDataKeyResponse returns the data key and its CiphertextBlob.
type GenerateDataKeyResponse struct {
	KeyId          string
	KeyVersionId   string
	Plaintext      string `json:",omitempty"`
	CiphertextBlob string
	KeyCheckValue  string `json:",omitempty"`
	RequestId      string
}

// GenerateAndExportDataKeyRequest asks for a data key returned under a CMK
// and under a public key.
type GenerateAndExportDataKeyRequest struct {
	KeyId             string                 `cli:"required" help:"key id, alias or ARN"`
	KeySpec           string                 `help:"AES_256 or AES_128 (NumberOfBytes wins)"`
	NumberOfBytes     *int                   `help:"1 to 1024 (default 32)"`
	EncryptionContext wrap.EncryptionContext `help:"JSON object of strings"`
	PublicKeyBlob     string                 `cli:"required,file" help:"base64 DER SubjectPublicKeyInfo"`
	WrappingKeySpec   string                 `cli:"required" help:"RSA_2048 or EC_SM2 (RSA_3072, RSA_4096: p11kms extension)"`
	WrappingAlgorithm string                 `cli:"required" help:"RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 (RSA) or SM2PKE (EC_SM2)"`
	DryRun            bool                   `help:"validate only"`
}

// ExportResponse returns a data key under a public key (and a CMK).
type ExportResponse struct {
	KeyId           string
	KeyVersionId    string
	CiphertextBlob  string `json:",omitempty"`
	ExportedDataKey string
	KeyCheckValue   string `json:",omitempty"`
	RequestId       string
}

// ExportDataKeyRequest re-wraps the data key in a CiphertextBlob under a public key.
type ExportDataKeyRequest struct {
	CiphertextBlob    string                 `cli:"required" help:"base64 CiphertextBlob"`
	EncryptionContext wrap.EncryptionContext `help:"JSON object of strings, as used to make the blob"`
	PublicKeyBlob     string                 `cli:"required,file" help:"base64 DER SubjectPublicKeyInfo"`
	WrappingKeySpec   string                 `cli:"required" help:"RSA_2048 or EC_SM2 (RSA_3072, RSA_4096: p11kms extension)"`
	WrappingAlgorithm string                 `cli:"required" help:"RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or SM2PKE"`
	DryRun            bool                   `help:"validate only"`
}

// EncryptRequest encrypts up to 6 KiB under a CMK.
type EncryptRequest struct {
	KeyId             string                 `cli:"required" help:"key id, alias or ARN"`
	Plaintext         string                 `cli:"required" help:"base64 of 1 to 6144 bytes"`
	EncryptionContext wrap.EncryptionContext `help:"JSON object of strings"`
	DryRun            bool                   `help:"validate only"`
}

// EncryptResponse returns the CiphertextBlob.
type EncryptResponse struct {
	KeyId          string
	KeyVersionId   string
	CiphertextBlob string
	RequestId      string
}

// DecryptRequest decrypts a CiphertextBlob.
type DecryptRequest struct {
	CiphertextBlob    string                 `cli:"required" help:"base64 CiphertextBlob"`
	EncryptionContext wrap.EncryptionContext `help:"JSON object of strings, as used to make the blob"`
	DryRun            bool                   `help:"validate only"`
}

// DecryptResponse returns the plaintext (base64).
type DecryptResponse struct {
	KeyId         string
	KeyVersionId  string
	Plaintext     string
	KeyCheckValue string `json:",omitempty"`
	RequestId     string
}

// ReEncryptRequest moves a CiphertextBlob under another key or context.
// It never releases the plaintext: exporting a data key under a public key
// is ExportDataKey's job, under ExportDataKey's permission.
type ReEncryptRequest struct {
	CiphertextBlob               string                 `cli:"required" help:"base64 CiphertextBlob"`
	SourceEncryptionContext      wrap.EncryptionContext `help:"JSON object of strings of the source blob"`
	DestinationKeyId             string                 `cli:"required" help:"key id, alias or ARN"`
	DestinationEncryptionContext wrap.EncryptionContext `help:"JSON object of strings for the new blob"`
	DryRun                       bool                   `help:"validate only"`
}

// ReEncryptResponse returns the new blob.
type ReEncryptResponse struct {
	KeyId              string
	KeyVersionId       string
	CiphertextBlob     string
	SourceKeyId        string
	SourceKeyVersionId string
	RequestId          string
}

// SweepResult says what a sweep did. Sweep returns every list non-nil
// (empty when there was nothing of its kind).
type SweepResult struct {
	Deleted  []string // keys destroyed after their pending window
	Rotated  []string // keys given a new version by automatic rotation
	Repaired []string // inconsistencies found and repaired
	Missing  []string // inconsistencies found that cannot be repaired (reported, never hidden)
	Orphans  []string // token objects no metadata names, found and not yet destroyed (see SweepOptions)
}

// KeyIds are the key and version a response names, for the wire record
// (the responses of the operations that use or describe one key).
func (r *KeyResponse) KeyIds() (keyID, versionID string) { return r.KeyMetadata.KeyId, "" }

// KeyIds are the key and version the new version is.
func (r *CreateKeyVersionResponse) KeyIds() (keyID, versionID string) {
	return r.KeyVersion.KeyId, r.KeyVersion.KeyVersionId
}

// KeyIds are the key and version described.
func (r *DescribeKeyVersionResponse) KeyIds() (keyID, versionID string) {
	return r.KeyVersion.KeyId, r.KeyVersion.KeyVersionId
}

// KeyIds are the key and version the data key is under.
func (r *GenerateDataKeyResponse) KeyIds() (keyID, versionID string) { return r.KeyId, r.KeyVersionId }

// KeyIds are the key and version the data key was under.
func (r *ExportResponse) KeyIds() (keyID, versionID string) { return r.KeyId, r.KeyVersionId }

// KeyIds are the key and version that sealed the blob.
func (r *EncryptResponse) KeyIds() (keyID, versionID string) { return r.KeyId, r.KeyVersionId }

// KeyIds are the key and version that had sealed the blob.
func (r *DecryptResponse) KeyIds() (keyID, versionID string) { return r.KeyId, r.KeyVersionId }

// KeyIds are the destination key and version.
func (r *ReEncryptResponse) KeyIds() (keyID, versionID string) { return r.KeyId, r.KeyVersionId }
