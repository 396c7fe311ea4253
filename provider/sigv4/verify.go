package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Header names and values the verifier reads.
const (
	HeaderDate          = "X-Amz-Date"
	HeaderSecurityToken = "X-Amz-Security-Token"
	HeaderContentSHA256 = "X-Amz-Content-Sha256"
	UnsignedPayload     = "UNSIGNED-PAYLOAD"
	dateFormat          = "20060102T150405Z"
	defaultSkew         = 5 * time.Minute
)

// Key is what a verifier needs of an access key: its secret and, for
// temporary credentials, the session token the request must carry.
type Key struct {
	Secret       string
	SessionToken string
}

// Config configures a Verifier.
type Config struct {
	// Service is the signing name the credential scope must carry
	// ("kms", "kms-xks-proxy"). Required.
	Service string
	// Region, when set, is the only region the scope may carry.
	Region string
	// SignedHeaders lists headers (any case) that must be signed besides
	// host and x-amz-date, which always must be (KMS: x-amz-target).
	SignedHeaders []string
	// RequireSignedPayload refuses x-amz-content-sha256: UNSIGNED-PAYLOAD.
	RequireSignedPayload bool
	// NormalizePath removes dot and empty segments from the path before
	// it is signed, as AWS does for every service but S3.
	NormalizePath bool
	// Skew is how far X-Amz-Date may be from Now; 0 means 5 minutes.
	Skew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Lookup finds an access key by id. Required.
	Lookup func(accessKeyID string) (Key, bool)
}

// Verifier checks SigV4-signed requests against one Config.
type Verifier struct {
	cfg      Config
	required []string
}

// New checks the configuration and returns its verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.Service == "" || cfg.Lookup == nil {
		return nil, errors.New("sigv4: Config.Service and Config.Lookup are required")
	}
	if cfg.Skew <= 0 {
		cfg.Skew = defaultSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	req := []string{"host", "x-amz-date"}
	for _, h := range cfg.SignedHeaders {
		req = append(req, strings.ToLower(h))
	}
	return &Verifier{cfg: cfg, required: req}, nil
}

// Verify checks r, whose body (already read, possibly empty) is body, and
// returns the parsed Authorization. Any refusal is an *Error.
func (v *Verifier) Verify(r *http.Request, body []byte) (*Authorization, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, fail(Missing, "Authorization", "Missing Authentication Token")
	}
	a, err := ParseAuthorization(h)
	if err != nil {
		return nil, err
	}
	if err := v.checkScope(r, a); err != nil {
		return nil, err
	}
	key, ok := v.cfg.Lookup(a.AccessKeyID)
	if !ok {
		return nil, fail(UnknownKey, "Credential", "The security token included in the request is invalid.")
	}
	if err := checkToken(r, a, key); err != nil {
		return nil, err
	}
	payload, err := v.payloadHash(r, body)
	if err != nil {
		return nil, err
	}
	creq, err := canonicalRequest(r, a.SignedHeaders, payload, v.cfg.NormalizePath)
	if err != nil {
		return nil, err
	}
	sts := StringToSign(Algorithm, r.Header.Get(HeaderDate), a.Scope(), creq)
	want := hmacSHA256(SigningKey(key.Secret, a.Date, a.Region, a.Service), []byte(sts))
	if !hmac.Equal(want, a.Signature) {
		e := fail(Mismatch, "Signature", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
		e.CanonicalRequest, e.StringToSign = creq, sts
		return nil, e
	}
	return a, nil
}

// checkScope checks the required signed headers, the scope's service
// and region, X-Amz-Date's form and window, and the scope date.
func (v *Verifier) checkScope(r *http.Request, a *Authorization) error {
	for _, need := range v.required {
		if !contains(a.SignedHeaders, need) {
			return fail(Incomplete, "SignedHeaders", "'%s' must be a 'SignedHeader' in the AWS Authorization.", need)
		}
	}
	if a.Service != v.cfg.Service {
		return fail(Mismatch, "Credential", "Credential should be scoped to correct service: '%s'.", v.cfg.Service)
	}
	if v.cfg.Region != "" && a.Region != v.cfg.Region {
		return fail(Mismatch, "Credential", "Credential should be scoped to a valid region: '%s'.", v.cfg.Region)
	}
	d := r.Header.Get(HeaderDate)
	t, err := time.Parse(dateFormat, d)
	if err != nil {
		return fail(Incomplete, HeaderDate, "X-Amz-Date must be a date in the form yyyymmddThhmmssZ")
	}
	now := v.cfg.Now().UTC()
	if t.Before(now.Add(-v.cfg.Skew)) {
		return fail(Expired, HeaderDate, "Signature expired: %s is now earlier than %s (%s - %s.)",
			d, now.Add(-v.cfg.Skew).Format(dateFormat), now.Format(dateFormat), v.cfg.Skew)
	}
	if t.After(now.Add(v.cfg.Skew)) {
		return fail(Expired, HeaderDate, "Signature not yet current: %s is still later than %s (%s + %s.)",
			d, now.Add(v.cfg.Skew).Format(dateFormat), now.Format(dateFormat), v.cfg.Skew)
	}
	if a.Date != d[:8] {
		return fail(Mismatch, "Credential", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'", a.Date, d[:8])
	}
	return nil
}

// checkToken requires the key's session token, signed, when the key has
// one, and refuses a token for a key that has none.
func checkToken(r *http.Request, a *Authorization, key Key) error {
	tok := r.Header.Get(HeaderSecurityToken)
	if tok == "" && key.SessionToken == "" {
		return nil
	}
	if tok != "" && !contains(a.SignedHeaders, "x-amz-security-token") {
		return fail(Incomplete, HeaderSecurityToken, "'x-amz-security-token' must be a 'SignedHeader' in the AWS Authorization when X-Amz-Security-Token is sent.")
	}
	if key.SessionToken == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(key.SessionToken)) != 1 {
		return fail(UnknownKey, HeaderSecurityToken, "The security token included in the request is invalid.")
	}
	return nil
}

// payloadHash is the hex SHA-256 of body; an x-amz-content-sha256 header
// must equal it, or be UNSIGNED-PAYLOAD where that is allowed.
func (v *Verifier) payloadHash(r *http.Request, body []byte) (string, error) {
	got := HexSHA256(body)
	claimed := r.Header.Get(HeaderContentSHA256)
	switch {
	case claimed == "":
		return got, nil
	case claimed == UnsignedPayload && !v.cfg.RequireSignedPayload:
		return claimed, nil
	case claimed == UnsignedPayload:
		return "", fail(Incomplete, "x-amz-content-sha256", "UNSIGNED-PAYLOAD is not accepted by %s: the body must be signed", v.cfg.Service)
	case subtle.ConstantTimeCompare([]byte(claimed), []byte(got)) != 1:
		return "", fail(Mismatch, "x-amz-content-sha256", "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	return got, nil
}

// SigningKey derives the SigV4 signing key for the secret and scope.
func SigningKey(secret, date, region, service string) []byte {
	return HMACChain([]byte("AWS4"+secret), date, region, service, "aws4_request")
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
