package wrap

import (
	"errors"
	"fmt"
)

// ParamError reports a caller-supplied value that is malformed or not
// acceptable. Param names the request parameter as the cloud APIs spell it
// (for example "PublicKeyBlob", "WrappingKeySpec", "EncryptionContext");
// Msg says what was wrong and, where there is a closed set, what is
// accepted.
type ParamError struct {
	Param string
	Msg   string
}

// Error returns "Param: Msg", for example
// "PublicKeyBlob: RSA modulus is 1024 bits; accepted: 2048, 3072, 4096".
func (e *ParamError) Error() string {
	if e.Param == "" {
		return "wrap: " + e.Msg
	}
	return e.Param + ": " + e.Msg
}

// paramErr builds a *ParamError with a formatted message.
func paramErr(param, format string, args ...any) *ParamError {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// ErrDecryption is the one error returned for every decryption failure
// (bad padding, bad SM2 C3, malformed ciphertext, wrong key). It is
// deliberately vague: callers must not be able to learn why a ciphertext
// was refused, which is what padding-oracle attacks need.
var ErrDecryption = errors.New("wrap: decryption failed")
