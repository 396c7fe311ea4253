package provider

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error codes, as Alibaba Cloud KMS spells them: the core's error kinds,
// which each wire dialect maps to its own codes.
const (
	CodeInvalidParameter   = "InvalidParameter"
	CodeKeyNotFound        = "Forbidden.KeyNotFound"
	CodeAliasNotFound      = "Forbidden.AliasNotFound"
	CodeAliasExists        = "Forbidden.AliasExists"
	CodeNoPermission       = "Forbidden.NoPermission"
	CodeDisabled           = "Rejected.Disabled"
	CodePendingDeletion    = "Rejected.PendingDeletion"
	CodeNotPendingDeletion = "Rejected.NotPendingDeletion"
	CodeInvalidCiphertext  = "InvalidCiphertext"
	CodeDryRun             = "DryRunOperationError"
	CodeInternalFailure    = "InternalFailure"
	CodeConflict           = "Rejected.Conflict"
	CodeUnsupportedOp      = "UnsupportedOperation"
)

// Error is a KMS error with its wire code and HTTP status. Message never
// holds key material, plaintext or PINs.
type Error struct {
	Code       string
	Message    string
	HTTPStatus int
	Param      string // the request parameter at fault, for InvalidParameter
	Err        error  // the underlying cause, if any (not shown to clients)
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

var statusOf = map[string]int{
	CodeInvalidParameter:   http.StatusBadRequest,
	CodeKeyNotFound:        http.StatusNotFound,
	CodeAliasNotFound:      http.StatusNotFound,
	CodeAliasExists:        http.StatusConflict,
	CodeNoPermission:       http.StatusForbidden,
	CodeDisabled:           http.StatusBadRequest,
	CodePendingDeletion:    http.StatusBadRequest,
	CodeNotPendingDeletion: http.StatusBadRequest,
	CodeInvalidCiphertext:  http.StatusBadRequest,
	CodeDryRun:             http.StatusPreconditionFailed,
	CodeInternalFailure:    http.StatusInternalServerError,
	CodeConflict:           http.StatusConflict,
	CodeUnsupportedOp:      http.StatusBadRequest,
}

// NewError builds an *Error with the HTTP status of its code.
func NewError(code, format string, args ...any) *Error {
	st, ok := statusOf[code]
	if !ok {
		st = http.StatusBadRequest
	}
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), HTTPStatus: st}
}

// InvalidParam is an InvalidParameter error naming the parameter and what it accepts.
func InvalidParam(param, format string, args ...any) *Error {
	e := NewError(CodeInvalidParameter, "%s: %s", param, fmt.Sprintf(format, args...))
	e.Param = param
	return e
}

// RenameParams returns err with its parameter named as a dialect names it
// (names maps the core's name to the wire's; the message's leading
// "<param>:" too), for a core request whose field names differ from the
// wire's. Any other error is returned as it is.
func RenameParams(err error, names map[string]string) error {
	var e *Error
	if !errors.As(err, &e) || names[e.Param] == "" {
		return err
	}
	c := *e
	c.Param = names[e.Param]
	if rest, ok := strings.CutPrefix(e.Message, e.Param+":"); ok {
		c.Message = c.Param + ":" + rest
	}
	return &c
}

// Internal wraps a token fault as InternalFailure: the client sees a generic message.
func Internal(op string, err error) *Error {
	e := NewError(CodeInternalFailure, "%s failed: the key store is unavailable", op)
	e.Err = err
	return e
}

// InvalidCiphertext is the one answer for every blob, context or tag failure.
func InvalidCiphertext(err error) *Error {
	e := NewError(CodeInvalidCiphertext, "the CiphertextBlob is invalid or does not match the EncryptionContext or key")
	e.Err = err
	return e
}

// AsError returns err as an *Error, wrapping unknown errors as InternalFailure.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal("operation", err)
}

// ErrorCode returns the wire code of err ("" for nil).
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	return AsError(err).Code
}
