package tencent

import (
	"errors"
	"fmt"

	"github.com/p11kms/p11kms/provider"
)

// Tencent Cloud API error codes this front-end answers with itself (the
// KMS's own errors are mapped by provider.TencentCode). The names are
// Tencent's common error codes and the KMS codes of the SDK's errors.go.
const (
	CodeInvalidAuthorization = "AuthFailure.InvalidAuthorization"
	CodeSecretIdNotFound     = "AuthFailure.SecretIdNotFound"
	CodeSignatureExpire      = "AuthFailure.SignatureExpire"
	CodeSignatureFailure     = "AuthFailure.SignatureFailure"
	CodeTokenFailure         = "AuthFailure.TokenFailure"
	CodeInvalidAction        = "InvalidAction"
	CodeNoSuchVersion        = "NoSuchVersion"
	CodeInvalidParameter     = "InvalidParameter"
	CodeInvalidParameterVal  = "InvalidParameterValue"
	CodeMissingParameter     = "MissingParameter"
	CodeUnknownParameter     = "UnknownParameter"
	CodeUnsupportedOperation = "UnsupportedOperation"
	CodeUnsupportedProtocol  = "UnsupportedProtocol"
	CodeRequestLimitExceeded = "RequestLimitExceeded"
	CodeRequestSizeExceeded  = "RequestSizeLimitExceeded"
	CodeServiceUnavailable   = "ServiceUnavailable"
	CodeUnauthorized         = "UnauthorizedOperation"
	CodeInternalError        = "InternalError"

	CodeInvalidAlias          = "InvalidParameterValue.InvalidAlias"
	CodeInvalidKeyUsage       = "InvalidParameterValue.InvalidKeyUsage"
	CodeInvalidType           = "InvalidParameterValue.InvalidType"
	CodeInvalidPlaintext      = "InvalidParameterValue.InvalidPlaintext"
	CodeInvalidHsmClusterId   = "InvalidParameterValue.InvalidHsmClusterId"
	CodeTagKeysDuplicated     = "InvalidParameterValue.TagKeysDuplicated"
	CodeInvalidPendingWindow  = "InvalidParameter.InvalidPendingWindowInDays"
	CodeCmkShouldBeDisabled   = "ResourceUnavailable.CmkShouldBeDisabled"
	CodeAliasAlreadyExists    = "InvalidParameterValue.AliasAlreadyExists"
	CodeEncryptionError       = "FailedOperation.EncryptionError"
	CodeCmkNotFound           = "ResourceUnavailable.CmkNotFound"
	CodeInvalidCiphertextCode = "InvalidParameterValue.InvalidCiphertext"
)

// apiError is an error answered with a Tencent code of this package's own.
// Its message never holds key material, plaintext or secrets.
type apiError struct {
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) error {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// codeAndMessage returns the Tencent code and the client-visible message of err.
func codeAndMessage(err error) (string, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code, ae.Message
	}
	pe := provider.AsError(err)
	return provider.TencentCode(pe), pe.Message
}
