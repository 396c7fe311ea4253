// Package sigv4 verifies AWS Signature Version 4 (AWS4-HMAC-SHA256)
// requests on the server side: the Authorization header, the canonical
// request (method, URI, query, signed headers, payload hash), the string
// to sign with its credential scope (date/region/service/aws4_request),
// the signing-key derivation and a constant-time comparison, the
// X-Amz-Date window and an optional X-Amz-Security-Token.
//
// The service name is a parameter (Config.Service: "kms" for the AWS KMS
// dialect, "kms-xks-proxy" for an XKS proxy), as are the headers that
// must be signed (host and x-amz-date always; x-amz-target for KMS) and
// whether UNSIGNED-PAYLOAD is refused. Every refusal is an *Error whose
// Kind says which AWS error it is and whose Part names what did not
// match; the package knows no wire dialect and maps nothing to HTTP.
//
// Only header-based signing is verified (no presigned query strings, no
// chunked STREAMING- payloads, no SigV4a). A Verifier is safe for
// concurrent use once built.
package sigv4
