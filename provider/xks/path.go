package xks

import "strings"

// The four operations, by their names in the spec (also the Record's
// Action, a closed set).
const (
	OpGetKeyMetadata  = "GetKeyMetadata"
	OpEncrypt         = "Encrypt"
	OpDecrypt         = "Decrypt"
	OpGetHealthStatus = "GetHealthStatus"
)

// APIRoot is what every XKS URI path holds after its prefix.
const APIRoot = "/kms/xks/v1/"

// route is a parsed XKS URI path.
type route struct {
	op    string
	keyID string // "" for GetHealthStatus
}

// parsePath parses [/prefix]/kms/xks/v1/{health|keys/{externalKeyId}/{metadata|encrypt|decrypt}}
// for the configured prefix: InvalidUriPathException for any other path,
// ValidationException for an externalKeyId outside the spec's characters.
func parsePath(p, prefix string) (route, error) {
	want := APIRoot
	if prefix != "" {
		want = "/" + prefix + APIRoot
	}
	if len(p) > maxURI || !strings.HasPrefix(p, want) {
		return route{}, fail(InvalidUriPathException, "the URI path does not name an XKS API of this proxy ([/prefix]/kms/xks/v1/...)")
	}
	rest := p[len(want):]
	if rest == "health" {
		return route{op: OpGetHealthStatus}, nil
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] != "keys" {
		return route{}, fail(InvalidUriPathException, "the URI path must end in /health or /keys/{externalKeyId}/{metadata|encrypt|decrypt}")
	}
	op, ok := map[string]string{"metadata": OpGetKeyMetadata, "encrypt": OpEncrypt, "decrypt": OpDecrypt}[parts[2]]
	if !ok {
		return route{}, fail(InvalidUriPathException, "the URI path must end in /keys/{externalKeyId}/ and one of metadata, encrypt, decrypt")
	}
	if !externalKeyIDPattern.MatchString(parts[1]) {
		return route{}, fail(ValidationException, "externalKeyId: accepted 1 to 128 characters A-Z, a-z, 0-9, '.', '-' and '_'")
	}
	return route{op: op, keyID: parts[1]}, nil
}

// maxURI bounds the URI path (the spec: the whole URI is at most 256
// characters).
const maxURI = 256
