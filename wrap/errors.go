package wrap

import (
	"errors"
	"fmt"
)

// Field is what a *ParamError is about, named neutrally: wrap knows no
// wire API, and each API names its own parameter for a field (the core's
// requests say PublicKeyBlob and WrappingAlgorithm, Tencent's
// EncryptionPublicKey and EncryptionAlgorithm), in its error map.
type Field string

// The fields wrap reports on.
const (
	FieldPublicKey  Field = "public key"         // a public key to encrypt to (DER, base64 or PEM)
	FieldKeySpec    Field = "key spec"           // a key spec name (RSA_2048, EC_SM2, ...)
	FieldAlgorithm  Field = "algorithm"          // an encryption algorithm name
	FieldPlaintext  Field = "plaintext"          // what is encrypted
	FieldCiphertext Field = "ciphertext"         // a CiphertextBlob
	FieldContext    Field = "encryption context" // an EncryptionContext as JSON
	FieldKey        Field = "key"                // key bytes (KCV)
)

// ParamError reports a caller-supplied value that is malformed or not
// acceptable. Field says which value, neutrally (the caller names the
// parameter); Msg says what was wrong and, where there is a closed set,
// what is accepted.
type ParamError struct {
	Field Field
	Msg   string
}

// Error returns "Field: Msg", for example
// "public key: RSA modulus is 1024 bits; accepted: 2048, 3072, 4096".
func (e *ParamError) Error() string {
	if e.Field == "" {
		return "wrap: " + e.Msg
	}
	return string(e.Field) + ": " + e.Msg
}

// paramErr builds a *ParamError with a formatted message.
func paramErr(field Field, format string, args ...any) *ParamError {
	return &ParamError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ErrDecryption is the one error returned for every decryption failure
// (bad padding, bad SM2 C3, malformed ciphertext, wrong key). It is
// deliberately vague: callers must not be able to learn why a ciphertext
// was refused, which is what padding-oracle attacks need.
var ErrDecryption = errors.New("wrap: decryption failed")
