package sigv4

import "strings"

// Algorithm is the only signing algorithm verified.
const Algorithm = "AWS4-HMAC-SHA256"

// maxAuthorization bounds the Authorization header parsed; the SDKs'
// headers are a few hundred bytes.
const maxAuthorization = 4096

// Authorization is a parsed AWS4-HMAC-SHA256 Authorization header.
type Authorization struct {
	AccessKeyID   string
	Date          string // yyyymmdd, from the credential scope
	Region        string
	Service       string
	SignedHeaders []string // lower-case, sorted, unique
	Signature     []byte   // 32 bytes
}

// Scope is the credential scope, date/region/service/aws4_request.
func (a *Authorization) Scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request"
}

// ParseAuthorization parses "AWS4-HMAC-SHA256 Credential=AKID/date/region/
// service/aws4_request, SignedHeaders=a;b, Signature=hex". The three
// components may come in any order, separated by commas and optional
// spaces; each must appear exactly once.
func ParseAuthorization(h string) (*Authorization, error) {
	f, err := ParseFields(Algorithm, h)
	if err != nil {
		return nil, err
	}
	a := &Authorization{SignedHeaders: f.SignedHeaders, Signature: f.Signature}
	if err := a.parseCredential(f.Credential); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Authorization) parseCredential(p []string) error {
	if len(p) != 5 || p[0] == "" || p[2] == "" || p[3] == "" {
		return fail(Incomplete, "Credential", "Credential must have the form <access key id>/<yyyymmdd>/<region>/<service>/aws4_request")
	}
	if p[4] != "aws4_request" {
		return fail(Mismatch, "Credential", "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'", p[4])
	}
	if !isDigits(p[1], 8) {
		return fail(Incomplete, "Credential", "the Credential scope date must be 8 digits (yyyymmdd), not '%s'", p[1])
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = p[0], p[1], p[2], p[3]
	return nil
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isHeaderName reports whether s is a non-empty lower-case HTTP token.
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
