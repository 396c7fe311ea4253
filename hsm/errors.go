package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Sentinel errors returned (wrapped) by this package.
var (
	// ErrNotFound means no object matched a lookup.
	ErrNotFound = errors.New("hsm: object not found")
	// ErrAmbiguous means more than one object matched a lookup that must be unique.
	ErrAmbiguous = errors.New("hsm: more than one object matches")
	// ErrExists means an object with that label or ID already exists.
	ErrExists = errors.New("hsm: object already exists")
	// ErrNotWritten is wrapped by a failed data-object write that is known
	// to have left nothing: no reader can ever see the value it tried to write.
	ErrNotWritten = errors.New("hsm: data object not written")
	// ErrConflict means a concurrent writer changed a data object first; re-read and retry.
	ErrConflict = errors.New("hsm: data object changed concurrently")
	// ErrDecryption is the one error for every failed authenticated decryption
	// (a bad GCM tag, a wrong key, wrong AAD): callers cannot tell them apart.
	ErrDecryption = errors.New("hsm: decryption failed")
	// ErrClosed means the token was closed.
	ErrClosed = errors.New("hsm: token is closed")
	// ErrMechanismUnsupported means the token refused a mechanism or its parameters.
	ErrMechanismUnsupported = errors.New("hsm: mechanism not supported by the token")
)

// Error is a failed PKCS#11 call: the function name and the CKR code.
// It unwraps to the [pkcs11.Error] so errors.Is matches CKR codes.
type Error struct {
	Op   string       // the C_ function, e.g. "C_Login"
	Code pkcs11.Error // the CKR code
}

func (e *Error) Error() string { return fmt.Sprintf("hsm: %s: %s", e.Op, e.Code.Error()) }

// Unwrap returns the CKR code.
func (e *Error) Unwrap() error { return e.Code }

// ckr wraps err from the PKCS#11 function op. A nil err stays nil; an error
// that is not a CKR code is wrapped with the operation name.
func ckr(op string, err error) error {
	if err == nil {
		return nil
	}
	var code pkcs11.Error
	if errors.As(err, &code) {
		return &Error{Op: op, Code: code}
	}
	return fmt.Errorf("hsm: %s: %w", op, err)
}

// IsCode reports whether err carries one of the PKCS#11 return values codes.
func IsCode(err error, codes ...uint) bool {
	for _, c := range codes {
		if errors.Is(err, pkcs11.Error(c)) {
			return true
		}
	}
	return false
}

// CodeOf returns the CKR code carried by err, if any.
func CodeOf(err error) (uint, bool) {
	var code pkcs11.Error
	if errors.As(err, &code) {
		return uint(code), true
	}
	return 0, false
}

// sessionBroken reports whether err means the session itself is unusable
// (rather than the operation failing): such a session is dropped and the
// operation retried once on a fresh, logged-in session.
func sessionBroken(err error) bool {
	return IsCode(err, pkcs11.CKR_SESSION_HANDLE_INVALID) ||
		IsCode(err, pkcs11.CKR_SESSION_CLOSED) ||
		IsCode(err, pkcs11.CKR_USER_NOT_LOGGED_IN)
}
