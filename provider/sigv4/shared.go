package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// What SigV4 shares with the schemes built like it (Tencent's TC3-HMAC-
// SHA256): the HMAC-SHA256 key chain, the canonical request's layout, the
// string to sign and the Authorization header's three components. Each
// scheme keeps its own names, scope and value rules.

// HMACChain is HMAC-SHA256 along parts: each part is MACed under the
// previous MAC, the first under key. SigV4's signing key is
// HMACChain("AWS4"+secret, date, region, service, "aws4_request"); TC3's
// is HMACChain("TC3"+secret, date, service, "tc3_request").
func HMACChain(key []byte, parts ...string) []byte {
	for _, p := range parts {
		key = hmacSHA256(key, []byte(p))
	}
	return key
}

// CanonicalRequest is the canonical request as SigV4 and TC3 lay it out:
// method, URI and query, one "name:value" line per signed header (names
// lower-case and sorted, values as the scheme canonicalises them), a blank
// line, the names joined by ';', and the payload hash, joined by newlines.
func CanonicalRequest(method, uri, query string, names, values []string, payloadHash string) string {
	var b strings.Builder
	for _, s := range []string{method, uri, query} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	for i, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(values[i])
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(names, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// StringToSign is the algorithm, the request's date, the credential scope
// and the hex SHA-256 of the canonical request, one per line.
func StringToSign(algorithm, date, scope, canonicalRequest string) string {
	return algorithm + "\n" + date + "\n" + scope + "\n" + HexSHA256([]byte(canonicalRequest))
}

// HexSHA256 is the lower-case hex SHA-256 of b (a payload hash).
func HexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Fields are an Authorization header's three components: the credential
// split at '/', the signed header names (lower-case HTTP tokens, sorted,
// unique) and the 32-byte signature.
type Fields struct {
	Credential    []string
	SignedHeaders []string
	Signature     []byte
}

// ParseFields parses "<algorithm> Credential=a/b/..., SignedHeaders=h1;h2,
// Signature=<64 lower-case hex>": the components in any order, separated
// by commas and optional spaces, each exactly once. Refusals are *Error
// (Incomplete) naming the component.
func ParseFields(algorithm, h string) (*Fields, error) {
	if len(h) > maxAuthorization {
		return nil, fail(Incomplete, "Authorization", "the Authorization header is longer than %d bytes", maxAuthorization)
	}
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != algorithm {
		return nil, fail(Incomplete, "Authorization", "the Authorization header must start with %q followed by a space", algorithm)
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
	f := &Fields{Credential: strings.Split(fields["Credential"], "/")}
	names := strings.Split(fields["SignedHeaders"], ";")
	for i, n := range names {
		if !isHeaderName(n) {
			return nil, fail(Incomplete, "SignedHeaders", "SignedHeaders must be lower-case header names separated by ';'")
		}
		if i > 0 && names[i-1] >= n {
			return nil, fail(Incomplete, "SignedHeaders", "SignedHeaders must be sorted and unique")
		}
	}
	f.SignedHeaders = names
	sig, err := hex.DecodeString(fields["Signature"])
	if err != nil || len(sig) != 32 || strings.ToLower(fields["Signature"]) != fields["Signature"] {
		return nil, fail(Incomplete, "Signature", "Signature must be 64 lower-case hexadecimal characters")
	}
	f.Signature = sig
	return f, nil
}
