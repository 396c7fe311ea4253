package aliyun

import (
	"fmt"
	"net/http"

	"github.com/p11kms/p11kms/provider"
)

// Error codes of the Alibaba Cloud gateway that this front-end answers
// itself, before a request reaches the provider. The provider's own codes
// (InvalidParameter, Forbidden.KeyNotFound, ...) pass through unchanged.
const (
	CodeIncompleteSignature   = "IncompleteSignature"         // a signature part is missing or malformed
	CodeSignatureDoesNotMatch = "SignatureDoesNotMatch"       // the signature is wrong
	CodeAccessKeyNotFound     = "InvalidAccessKeyId.NotFound" // no such access key
	CodeTimestampExpired      = "InvalidTimeStamp.Expired"    // more than 15 minutes off
	CodeTimestampFormat       = "InvalidTimeStamp.Format"     // not ISO 8601 UTC
	CodeNonceUsed             = "SignatureNonceUsed"          // a replay
	CodeActionNotFound        = "InvalidAction.NotFound"      // not a KMS action p11kms serves
	CodeInvalidVersion        = "InvalidVersion"              // not API version 2016-01-20
	CodeThrottling            = "Rejected.Throttling"         // the access key's rate limit, or its share of the replay memory
	CodeUnsupportedMethod     = "UnsupportedHTTPMethod"       // neither GET nor POST
	CodeServiceUnavailable    = "ServiceUnavailable"          // HTTP 503: the audit log cannot be written, or the shared state (Redis) is unreachable
	CodeRequestTooLarge       = provider.CodeInvalidParameter // with HTTP 413
)

// apiError builds a gateway error with its HTTP status.
func apiError(status int, code, format string, args ...any) *provider.Error {
	return &provider.Error{Code: code, Message: fmt.Sprintf(format, args...), HTTPStatus: status}
}

func incomplete(format string, args ...any) *provider.Error {
	return apiError(http.StatusBadRequest, CodeIncompleteSignature, format, args...)
}

func mismatch(format string, args ...any) *provider.Error {
	return apiError(http.StatusBadRequest, CodeSignatureDoesNotMatch, format, args...)
}
