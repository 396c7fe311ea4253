package tencent

import (
	"errors"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// Tencent Cloud API error codes this front-end answers with itself (the
// core's own error kinds are mapped by coreCode). The names are
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

// errorf is an error answered with a Tencent code of this package's own
// (wire.APIError, shared by the dialects).
var errorf = wire.Errorf

// codeAndMessage returns the Tencent code and the client-visible message of err.
func codeAndMessage(err error) (string, string) {
	var ae *wire.APIError
	if errors.As(err, &ae) {
		return ae.Code, ae.Message
	}
	var de *wire.DecodeError
	if errors.As(err, &de) {
		return decodeCodes[de.Kind], de.Msg
	}
	pe := provider.AsError(err)
	return coreCode(pe), pe.Message
}

// wrapParams are Tencent's parameters for wrap's neutral fields (the
// public key to export to and its algorithm).
var wrapParams = map[wrap.Field]string{wrap.FieldPublicKey: "EncryptionPublicKey", wrap.FieldAlgorithm: "EncryptionAlgorithm"}

// fromWrap is a wrap parameter error named as Tencent names it.
func fromWrap(err error) error { return provider.FromWrapAs(err, wrapParams) }

// coreCodes maps the core's error kinds to Tencent Cloud KMS error codes.
var coreCodes = map[string]string{
	provider.CodeInvalidParameter:   CodeInvalidParameterVal,
	provider.CodeKeyNotFound:        CodeCmkNotFound,
	provider.CodeAliasNotFound:      CodeCmkNotFound,
	provider.CodeAliasExists:        CodeAliasAlreadyExists,
	provider.CodeNoPermission:       CodeUnauthorized,
	provider.CodeDisabled:           "ResourceUnavailable.CmkDisabled",
	provider.CodePendingDeletion:    "ResourceUnavailable.KeyPendingDelete",
	provider.CodeNotPendingDeletion: "ResourceUnavailable.CmkStateNotSupport",
	provider.CodeInvalidCiphertext:  CodeInvalidCiphertextCode,
	provider.CodeDryRun:             "DryRunOperation",
	provider.CodeInternalFailure:    CodeInternalError,
	provider.CodeConflict:           "FailedOperation",
	provider.CodeUnsupportedOp:      CodeUnsupportedOperation,
	provider.CodePendingImport:      "ResourceUnavailable.CmkStateNotSupport",
}

// coreCode is Tencent's code for a core error. A malformed key id is
// InvalidParameterValue.InvalidKeyId; a public-key encryption failure is
// FailedOperation.EncryptionError; a Plaintext that is not base64 is
// InvalidParameterValue.InvalidPlaintext.
func coreCode(e *provider.Error) string {
	if e.Code == provider.CodeInvalidParameter {
		switch e.Param {
		case "KeyId":
			return "InvalidParameterValue.InvalidKeyId"
		case "EncryptionPublicKey", "EncryptionAlgorithm":
			return CodeEncryptionError
		case "Plaintext":
			return CodeInvalidPlaintext
		}
	}
	if c, ok := coreCodes[e.Code]; ok {
		return c
	}
	return CodeInternalError
}
