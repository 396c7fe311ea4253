package tencent

import (
	"net/http"
	"time"

	"github.com/p11kms/p11kms/provider/sigv4"
	"github.com/p11kms/p11kms/provider/wire"
)

// authenticate checks the request's signature (TC3-HMAC-SHA256 or v1
// HmacSHA1/HmacSHA256), timestamp and replay rules at once, as the
// pipeline's verify and claim steps do, and returns the action and its
// parameters. On error the returned request holds what could be parsed
// (claimed SecretId, action).
func (h *handler) authenticate(r *http.Request, body []byte, now time.Time) (*request, error) {
	p, err := h.authenticateRequest(wire.RequestWithBody(r, body), body, now)
	if err == nil {
		err = p.replay.Claim()
	}
	return p, err
}

// The TC3 signing steps as the signature tests spell them, on the shared
// SigV4 layout the verifier uses (provider/sigv4).

func tc3CanonicalRequest(method, uri, query string, headers [][2]string, _ string, payloadHash string) string {
	names, values := make([]string, len(headers)), make([]string, len(headers))
	for i, h := range headers {
		names[i], values[i] = h[0], h[1]
	}
	return sigv4.CanonicalRequest(method, uri, query, names, values, payloadHash)
}

func tc3StringToSign(timestamp, scope, canonical string) string {
	return sigv4.StringToSign(SchemeTC3, timestamp, scope, canonical)
}

func tc3SigningKey(secret, date, service string) []byte {
	return sigv4.HMACChain([]byte("TC3"+secret), date, service, tc3Terminator)
}

func sha256Hex(b []byte) string { return sigv4.HexSHA256(b) }

// repeatable are the actions a TC3 signature may repeat: the table's reads
// (init runs after the table's, this file sorting after theirs).
var repeatable = map[string]bool{}

func init() {
	for name, a := range actions {
		if !a.Write {
			repeatable[name] = true
		}
	}
}
