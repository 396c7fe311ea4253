package wire

import (
	"errors"
	"fmt"
)

// APIError is a dialect's answer with a code of the dialect's own (a
// signature refusal, an unknown action, a wire-only check), as opposed to
// one of the core's error kinds (*provider.Error), which the dialect maps.
// Its message never holds key material, plaintext or secrets; client text
// in it is clipped (provider.Clip).
type APIError struct {
	Code    string
	Message string
}

// Error returns "Code: Message".
func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Errorf is an *APIError with the dialect's code and a formatted message.
func Errorf(code, format string, args ...any) error {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ReadBody reads the request's body once (Request.Body) and, when that
// fails, returns the dialect's refusal: refuse(true) for a request over
// the body limit (Request.Max), refuse(false) for a body that could not
// be read.
func ReadBody(req *Request, refuse func(tooLarge bool) error) ([]byte, error) {
	b, err := req.Body()
	if err != nil {
		return nil, refuse(errors.Is(err, ErrTooLarge))
	}
	return b, nil
}
