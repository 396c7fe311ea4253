package sigv4

import (
	"encoding/hex"
	"strings"
)

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
	if len(h) > maxAuthorization {
		return nil, fail(Incomplete, "Authorization", "the Authorization header is longer than %d bytes", maxAuthorization)
	}
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != Algorithm {
		return nil, fail(Incomplete, "Authorization", "the Authorization header must start with %q followed by a space", Algorithm)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential", "SignedHeaders", "Signature":
		default:
			return nil, fail(Incomplete, "Authorization", "Authorization header components must be Credential=, SignedHeaders= and Signature=, separated by commas")
		}
		if _, dup := fields[k]; dup || !ok {
			return nil, fail(Incomplete, k, "the Authorization header must contain %s= exactly once", k)
		}
		fields[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if _, ok := fields[k]; !ok {
			return nil, fail(Incomplete, k, "Authorization header requires '%s' parameter", k)
		}
	}
	a := &Authorization{}
	if err := a.parseCredential(fields["Credential"]); err != nil {
		return nil, err
	}
	if err := a.parseSignedHeaders(fields["SignedHeaders"]); err != nil {
		return nil, err
	}
	sig, err := hex.DecodeString(fields["Signature"])
	if err != nil || len(sig) != 32 || strings.ToLower(fields["Signature"]) != fields["Signature"] {
		return nil, fail(Incomplete, "Signature", "Signature must be 64 lower-case hexadecimal characters")
	}
	a.Signature = sig
	return a, nil
}

func (a *Authorization) parseCredential(c string) error {
	p := strings.Split(c, "/")
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

func (a *Authorization) parseSignedHeaders(s string) error {
	names := strings.Split(s, ";")
	for i, n := range names {
		if !isHeaderName(n) {
			return fail(Incomplete, "SignedHeaders", "SignedHeaders must be lower-case header names separated by ';'")
		}
		if i > 0 && names[i-1] >= n {
			return fail(Incomplete, "SignedHeaders", "SignedHeaders must be sorted and unique")
		}
	}
	a.SignedHeaders = names
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
