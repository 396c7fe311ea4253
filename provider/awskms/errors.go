package awskms

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/sigv4"
	"github.com/p11kms/p11kms/provider/wire"
)

// AWS KMS error names (the __type and X-Amzn-ErrorType of an answer), as
// aws-sdk-go-v2/service/kms/types names them, and the JSON protocol's
// own (ValidationException, SerializationException, ...).
const (
	CodeAccessDenied       = "AccessDeniedException"
	CodeAlreadyExists      = "AlreadyExistsException"
	CodeConflict           = "ConflictException"
	CodeDependencyTimeout  = "DependencyTimeoutException"
	CodeDisabled           = "DisabledException"
	CodeDryRun             = "DryRunOperationException"
	CodeIncorrectKey       = "IncorrectKeyException"
	CodeInternal           = "KMSInternalException"
	CodeInvalidAliasName   = "InvalidAliasNameException"
	CodeInvalidArn         = "InvalidArnException"
	CodeInvalidCiphertext  = "InvalidCiphertextException"
	CodeInvalidKeyUsage    = "InvalidKeyUsageException"
	CodeInvalidMarker      = "InvalidMarkerException"
	CodeInvalidGrantToken  = "InvalidGrantTokenException"
	CodeInvalidState       = "KMSInvalidStateException"
	CodeNotFound           = "NotFoundException"
	CodeSerialization      = "SerializationException"
	CodeThrottling         = "ThrottlingException"
	CodeUnknownOperation   = "UnknownOperationException"
	CodeUnsupportedOp      = "UnsupportedOperationException"
	CodeValidation         = "ValidationException"
	CodeRequestTooLarge    = "RequestEntityTooLargeException"
	CodeMissingAuthToken   = "MissingAuthenticationTokenException"
	CodeIncompleteSig      = "IncompleteSignatureException"
	CodeInvalidSignature   = "InvalidSignatureException"
	CodeUnrecognizedClient = "UnrecognizedClientException"
)

// statusOf is the HTTP status of each error name; the rest are 400.
var statusOf = map[string]int{
	CodeNotFound:          http.StatusNotFound,
	CodeAlreadyExists:     http.StatusConflict,
	CodeDisabled:          http.StatusConflict,
	CodeInvalidState:      http.StatusConflict,
	CodeConflict:          http.StatusConflict,
	CodeDryRun:            http.StatusPreconditionFailed,
	CodeInternal:          http.StatusInternalServerError,
	CodeDependencyTimeout: http.StatusServiceUnavailable,
	CodeRequestTooLarge:   http.StatusRequestEntityTooLarge,
	CodeMissingAuthToken:  http.StatusForbidden,
}

// fromCore maps the core's codes (provider.Code*) to AWS's names.
var fromCore = map[string]string{
	provider.CodeInvalidParameter:   CodeValidation,
	provider.CodeKeyNotFound:        CodeNotFound,
	provider.CodeAliasNotFound:      CodeNotFound,
	provider.CodeAliasExists:        CodeAlreadyExists,
	provider.CodeNoPermission:       CodeAccessDenied,
	provider.CodeDisabled:           CodeDisabled,
	provider.CodePendingDeletion:    CodeInvalidState,
	provider.CodeNotPendingDeletion: CodeInvalidState,
	provider.CodeInvalidCiphertext:  CodeInvalidCiphertext,
	provider.CodeDryRun:             CodeDryRun,
	provider.CodeInternalFailure:    CodeInternal,
	provider.CodeConflict:           CodeConflict,
	provider.CodeUnsupportedOp:      CodeUnsupportedOp,
}

// errorf is an answer with an AWS error name of this dialect's own
// (wire.APIError, shared by the dialects).
var errorf = wire.Errorf

// invalid is a ValidationException naming the parameter and what it accepts.
func invalid(param, format string, args ...any) error {
	return errorf(CodeValidation, "%s: %s", param, fmt.Sprintf(format, args...))
}

// codeOf returns the AWS error name, HTTP status and message of err.
func codeOf(err error) (code string, status int, msg string) {
	var ae *wire.APIError
	var se *sigv4.Error
	switch {
	case errors.As(err, &ae):
		code, msg = ae.Code, ae.Message
	case errors.As(err, &se):
		code, msg = se.Kind.AWSCode(), se.Message
		if se.CanonicalRequest != "" {
			msg += "\n\nThe Canonical String for this request should have been\n'" + provider.Clip(se.CanonicalRequest, 2048) +
				"'\n\nThe String-to-Sign should have been\n'" + provider.Clip(se.StringToSign, 512) + "'\n"
		}
	default:
		pe := provider.AsError(err)
		code, msg = fromCore[pe.Code], pe.Message
		if code == "" {
			code = CodeInternal
		}
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusBadRequest
	}
	return code, status, msg
}
