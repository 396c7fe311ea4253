package importer

// Paths an import can take, reported in ImportDataKeyResponse.Path.
const (
	// PathTokenUnwrap: C_UnwrapKey in the token; the plaintext key never
	// enters host memory.
	PathTokenUnwrap = "token-unwrap"
	// PathHostOAEP: raw RSA (CKM_RSA_X_509) in the token, OAEP decoded here
	// in constant time, then C_CreateObject. Only with AllowHostDecode.
	PathHostOAEP = "token-raw-rsa+host-oaep"
	// PathHostSM2: CKM_ECDH1_DERIVE in the token, SM2 finished here, then
	// C_CreateObject.
	PathHostSM2 = "token-ecdh+host-sm2"
)

// Key types an ExportedDataKey can be imported as.
const (
	KeyTypeAES           = "AES"            // CKK_AES, 16, 24 or 32 bytes
	KeyTypeGenericSecret = "GENERIC_SECRET" // CKK_GENERIC_SECRET, 1 to 1024 bytes
)

// Limits on request values.
const (
	MaxLabelBytes       = 128                  // KeyLabel, WrappingKeyLabel
	MaxExportedDataKey  = 8192                 // base64 characters of ExportedDataKey
	MaxPlaintextBytes   = 64 << 10             // Encrypt's Plaintext
	MaxAADBytes         = 8 << 10              // Encrypt's and Decrypt's AAD
	ReservedLabelPrefix = "p11kms/"            // CMK version labels; refused here
	DefaultAAD          = "p11kms/importer/v1" // the AAD when a request has none
)

// CreateWrappingKeyRequest asks for a new wrapping key pair in the token.
type CreateWrappingKeyRequest struct {
	WrappingKeySpec string `cli:"required" help:"RSA_2048, RSA_3072, RSA_4096 or EC_SM2"`
	KeyLabel        string `cli:"required" help:"CKA_LABEL of the key pair; must not exist yet"`
}

// WrappingKeyResponse describes a wrapping key and its public half, in the
// forms the exporting side accepts (Alibaba PublicKeyBlob, Tencent
// EncryptionPublicKey).
type WrappingKeyResponse struct {
	KeyLabel        string
	KeyId           string // hex CKA_ID
	WrappingKeySpec string
	PublicKeyBlob   string // base64 DER SubjectPublicKeyInfo
	PublicKeyPem    string // PEM "PUBLIC KEY"
	RequestId       string
}

// GetWrappingPublicKeyRequest names a wrapping key.
type GetWrappingPublicKeyRequest struct {
	KeyLabel string `cli:"required" help:"label of the wrapping key"`
}

// ListWrappingKeysRequest has no parameters.
type ListWrappingKeysRequest struct{}

// WrappingKeyInfo is one entry of ListWrappingKeysResponse.
type WrappingKeyInfo struct {
	KeyLabel        string
	KeyId           string
	WrappingKeySpec string
}

// ListWrappingKeysResponse lists the token's wrapping keys, sorted by label.
type ListWrappingKeysResponse struct {
	WrappingKeys []WrappingKeyInfo
	TotalCount   int
	RequestId    string
}

// DeleteWrappingKeyRequest names the wrapping key to destroy.
type DeleteWrappingKeyRequest struct {
	KeyLabel string `cli:"required" help:"label of the wrapping key to destroy (both halves)"`
}

// DeleteWrappingKeyResponse confirms a deletion.
type DeleteWrappingKeyResponse struct {
	KeyLabel  string
	RequestId string
}

// DeleteKeyRequest names the imported key to destroy.
type DeleteKeyRequest struct {
	KeyLabel string `cli:"required" help:"label of the imported key to destroy"`
}

// DeleteKeyResponse confirms a deletion.
type DeleteKeyResponse struct {
	KeyLabel  string
	RequestId string
}

// ImportDataKeyRequest imports an ExportedDataKey into the token.
type ImportDataKeyRequest struct {
	WrappingKeyLabel  string `cli:"required" help:"label of the wrapping key the data key was exported to"`
	WrappingAlgorithm string `cli:"required" help:"RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSAES_PKCS1_V1_5, SM2PKE, SM2 or SM2_C1C3C2_ASN1"`
	ExportedDataKey   string `cli:"required,file" help:"the wrapped data key, base64"`
	KeyLabel          string `cli:"required" help:"CKA_LABEL of the imported key"`
	KeyType           string `help:"AES (default; 16, 24 or 32 bytes) or GENERIC_SECRET (1 to 1024 bytes)"`
	// ExpectedKeyCheckValue, if set, must equal the imported key's KCV
	// (6 hex digits), else nothing is imported.
	ExpectedKeyCheckValue string `help:"KCV the imported key must have: 6 hex digits"`
	// Usage is the set of operations the key may do; default encrypt,
	// decrypt for AES and sign, verify for GENERIC_SECRET.
	Usage []string `help:"JSON list of encrypt, decrypt, wrap, unwrap, sign, verify (default [\"encrypt\",\"decrypt\"]; GENERIC_SECRET: [\"sign\",\"verify\"])"`
	// Replace destroys an imported key with the same label, after the new
	// one exists.
	Replace bool `help:"replace an existing imported key with this label"`
	// AllowHostDecode permits the token-raw-rsa+host-oaep path when the
	// token cannot unwrap with the OAEP hash: the data key is then briefly
	// in this process's memory.
	AllowHostDecode bool `help:"if the token lacks the OAEP hash, decrypt raw in the token and decode OAEP on this host"`
	// Ephemeral makes a session object: gone when the process ends.
	Ephemeral bool `help:"import as a session object (use-once keys, benchmarks)"`
}

// ImportDataKeyResponse describes the imported key and how it got there.
type ImportDataKeyResponse struct {
	Path          string // PathTokenUnwrap, PathHostOAEP or PathHostSM2
	KeyLabel      string
	KeyId         string // hex CKA_ID
	KeyType       string
	KeyCheckValue string // 6 hex digits; empty only for a GENERIC_SECRET the token cannot check
	Usage         []string
	Ephemeral     bool
	RequestId     string
}

// EncryptRequest encrypts with an imported AES key in the token.
type EncryptRequest struct {
	KeyLabel  string `cli:"required" help:"label of an imported AES key allowed to encrypt"`
	Plaintext string `cli:"required,file" help:"data to encrypt, base64 (at most 64 KiB decoded)"`
	AAD       string `help:"additional authenticated data, base64 (default: the bytes of \"p11kms/importer/v1\")"`
}

// EncryptResponse carries base64(iv ‖ ciphertext ‖ tag).
type EncryptResponse struct {
	KeyLabel       string
	CiphertextBlob string
	RequestId      string
}

// DecryptRequest decrypts an EncryptResponse's CiphertextBlob in the token.
type DecryptRequest struct {
	KeyLabel       string `cli:"required" help:"label of an imported AES key allowed to decrypt"`
	CiphertextBlob string `cli:"required,file" help:"base64(iv ‖ ciphertext ‖ tag) as Encrypt returns it"`
	AAD            string `help:"the AAD given to Encrypt, base64"`
}

// DecryptResponse carries the plaintext, base64.
type DecryptResponse struct {
	KeyLabel  string
	Plaintext string
	RequestId string
}
