package sigv4

import "fmt"

// Kind is the class of a refusal, one per AWS error name.
type Kind int

const (
	// Missing: no Authorization header (AWS: MissingAuthenticationTokenException).
	Missing Kind = iota + 1
	// Incomplete: the Authorization header or a required part of the
	// request is malformed or absent (AWS: IncompleteSignatureException).
	Incomplete
	// UnknownKey: the access key id, or the session token, is not
	// recognised (AWS: UnrecognizedClientException).
	UnknownKey
	// Mismatch: a part of the signature, its scope, its date or the body
	// hash does not match (AWS: InvalidSignatureException).
	Mismatch
	// Expired: X-Amz-Date is outside the allowed window
	// (AWS: InvalidSignatureException, "Signature expired").
	Expired
)

// AWSCode is the error name AWS services return for the kind.
func (k Kind) AWSCode() string {
	switch k {
	case Missing:
		return "MissingAuthenticationTokenException"
	case Incomplete:
		return "IncompleteSignatureException"
	case UnknownKey:
		return "UnrecognizedClientException"
	default:
		return "InvalidSignatureException"
	}
}

// Error is a refused request: the kind, the part of the request that did
// not match (as AWS names it: "Authorization", "Credential",
// "SignedHeaders", "Signature", "X-Amz-Date", "X-Amz-Security-Token",
// "x-amz-content-sha256", a header name), and a message for the client.
// The message never holds a secret; it may hold client-sent text, which
// callers clip before logging.
type Error struct {
	Kind    Kind
	Part    string
	Message string
	// CanonicalRequest and StringToSign are what this server computed,
	// set only when the Signature did not match (AWS returns both to help
	// a client find its signing bug; neither holds a secret).
	CanonicalRequest string
	StringToSign     string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("sigv4: %s: %s", e.Part, e.Message) }

func fail(k Kind, part, format string, args ...any) *Error {
	return &Error{Kind: k, Part: part, Message: fmt.Sprintf(format, args...)}
}
