package xks

import (
	"errors"
	"fmt"
	"net/http"
)

// The spec's error names.
const (
	ValidationException           = "ValidationException"
	InvalidStateException         = "InvalidStateException"
	InvalidCiphertextException    = "InvalidCiphertextException"
	InvalidKeyUsageException      = "InvalidKeyUsageException"
	AuthenticationFailedException = "AuthenticationFailedException"
	AccessDeniedException         = "AccessDeniedException"
	KeyNotFoundException          = "KeyNotFoundException"
	InvalidUriPathException       = "InvalidUriPathException"
	UnsupportedOperationException = "UnsupportedOperationException"
	ThrottlingException           = "ThrottlingException"
	InternalException             = "InternalException"
	DependencyTimeoutException    = "DependencyTimeoutException"
	// MethodNotAllowed is not one of the spec's names: a GET gets 405.
	MethodNotAllowed = "MethodNotAllowed"
)

// statuses is each error name's HTTP status (the spec's table).
var statuses = map[string]int{
	ValidationException:           http.StatusBadRequest,
	InvalidStateException:         http.StatusBadRequest,
	InvalidCiphertextException:    http.StatusBadRequest,
	InvalidKeyUsageException:      http.StatusBadRequest,
	AuthenticationFailedException: http.StatusUnauthorized,
	AccessDeniedException:         http.StatusForbidden,
	KeyNotFoundException:          http.StatusNotFound,
	InvalidUriPathException:       http.StatusNotFound,
	ThrottlingException:           http.StatusTooManyRequests,
	UnsupportedOperationException: http.StatusNotImplemented,
	InternalException:             http.StatusInternalServerError,
	DependencyTimeoutException:    http.StatusServiceUnavailable,
	MethodNotAllowed:              http.StatusMethodNotAllowed,
}

// Error is an XKS error: its name, a message for the client (printable
// ASCII, under 512 characters) and, for an InternalException, the cause
// the client is not told.
type Error struct {
	Name    string
	Message string
	Cause   error
}

// Error is the name, the message and the cause (for logs).
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Name + ": " + e.Message + ": " + e.Cause.Error()
	}
	return e.Name + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Status is the error's HTTP status.
func (e *Error) Status() int { return statuses[e.Name] }

func fail(name, format string, args ...any) *Error {
	return &Error{Name: name, Message: fmt.Sprintf(format, args...)}
}

func internal(what string, cause error) *Error {
	return &Error{Name: InternalException, Message: "internal failure " + what, Cause: cause}
}

// asError turns any error into an *Error (a panic recovered by the
// pipeline, a cancelled context) for the response.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internal("serving the request", err)
}

// maxMessage bounds errorMessage (the spec: under 512 characters).
const maxMessage = 500

// message is e's errorMessage: printable ASCII only, clipped.
func (e *Error) message() string {
	b := []byte(e.Message)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > maxMessage {
		b = append(b[:maxMessage-3], "..."...)
	}
	return string(b)
}
