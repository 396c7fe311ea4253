package aliyun

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// Signature schemes, as Record and tests name them.
const (
	SchemeACS3 = "ACS3-HMAC-SHA256"
	SchemeACS4 = "ACS4-HMAC-SHA256"
	SchemeRPC  = "RPC-HMAC-SHA1"
)

const (
	// MaxClockSkew is how far a request's timestamp may be from the clock.
	MaxClockSkew = 15 * time.Minute
	// NonceMemory is how long a nonce is remembered: twice the window.
	NonceMemory = 2 * MaxClockSkew
	// maxNonce bounds a nonce's length.
	maxNonce = 128
)

// rpcProtocolParams are the RPC scheme's own parameters, signed but not
// passed to the action. RegionId is accepted (and ignored) in every scheme.
var rpcProtocolParams = []string{"AccessKeyId", "Action", "Format", "RegionId", "Signature",
	"SignatureMethod", "SignatureNonce", "SignatureType", "SignatureVersion", "Timestamp", "Version"}

// acsRequiredHeaders must be among an ACS3/ACS4 request's signed headers:
// they carry what the server acts on.
var acsRequiredHeaders = []string{"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date",
	"x-acs-signature-nonce", "x-acs-version"}

// authResult is who signed a request and what it asks for.
type authResult struct {
	Scheme    string
	AccessKey wire.AccessKey
	Action    string
	Nonce     string
	Time      time.Time
	// Params are the action's parameters (protocol parameters removed).
	Params map[string]string
}

// verifier checks signatures; it holds no state.
type verifier struct {
	keys *wire.AccessKeys
	skew time.Duration // the accepted timestamp distance (0: MaxClockSkew)
}

// claimedAccessKeyId returns the access key id a request names, before any
// check (for the audit record of a refused request).
func claimedAccessKeyId(r *http.Request, rr *rawRequest) string {
	auth := r.Header.Get("Authorization")
	if alg, rest, ok := strings.Cut(auth, " "); ok && (alg == SchemeACS3 || alg == SchemeACS4) {
		if p, err := parseAuthorization(rest); err == nil {
			ak, _, _ := strings.Cut(p.Credential, "/")
			return provider.Clip(ak, 128)
		}
		return ""
	}
	if rr != nil {
		return provider.Clip(rr.All["AccessKeyId"], 128)
	}
	return ""
}

// verify authenticates r (whose body has been read into body and parsed
// into rr) at time now. It does not check the nonce for reuse, nor the
// host (the pipeline does, wire.Serve).
func (v *verifier) verify(r *http.Request, rr *rawRequest, body []byte, now time.Time) (*authResult, error) {
	auth := r.Header.Get("Authorization")
	if auth != "" {
		alg, rest, _ := strings.Cut(auth, " ")
		switch alg {
		case SchemeACS3, SchemeACS4:
			return v.verifyACS(alg, rest, r, rr, body, now)
		}
		return nil, incomplete("the Authorization scheme is not supported; use ACS3-HMAC-SHA256, ACS4-HMAC-SHA256 or the RPC HMAC-SHA1 signature")
	}
	if _, ok := rr.All["Signature"]; ok {
		return v.verifyRPC(r, rr, now)
	}
	return nil, incomplete("the request is not signed: no Authorization header and no Signature parameter")
}

// acsAuthorization is an ACS3/ACS4 Authorization header's parameters.
type acsAuthorization struct {
	Credential, SignedHeaders, Signature string
}

// parseAuthorization splits "Credential=..,SignedHeaders=..,Signature=..".
func parseAuthorization(s string) (acsAuthorization, error) {
	var out acsAuthorization
	malformed := func() (acsAuthorization, error) {
		return acsAuthorization{}, incomplete("the Authorization header is malformed")
	}
	var seen [3]bool
	for part := range strings.SplitSeq(s, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return malformed()
		}
		var i int
		var field *string
		switch k {
		case "Credential":
			i, field = 0, &out.Credential
		case "SignedHeaders":
			i, field = 1, &out.SignedHeaders
		case "Signature":
			i, field = 2, &out.Signature
		default:
			return malformed()
		}
		if seen[i] {
			return malformed()
		}
		seen[i], *field = true, val
	}
	for _, f := range []struct{ name, val string }{{"Credential", out.Credential}, {"SignedHeaders", out.SignedHeaders}, {"Signature", out.Signature}} {
		if f.val == "" {
			return acsAuthorization{}, incomplete("the Authorization header lacks %s", f.name)
		}
	}
	return out, nil
}

// percentEncode is the encoding Alibaba signs (the SDKs' URL query escaping
// with a space as %20, * as %2A and ~ unescaped): RFC 3986's unreserved
// characters as they are, every other byte as %XX in upper-case hex.
func percentEncode(s string) string {
	return string(appendPercentEncoded(make([]byte, 0, len(s)+len(s)/4), s))
}

func appendPercentEncoded(dst []byte, s string) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// canonicalQuery sorts the parameters by name and percent-encodes each
// name and value. ACS4 leaves out the "=" of an empty value; ACS3 and RPC
// keep it.
func canonicalQuery(params map[string]string, omitEmptyEquals bool) string {
	return string(appendCanonicalQuery(nil, params, omitEmptyEquals))
}

func appendCanonicalQuery(dst []byte, params map[string]string, omitEmptyEquals bool) []byte {
	var arr [16]string
	keys := arr[:0]
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = appendPercentEncoded(dst, k)
		if v := params[k]; v != "" || !omitEmptyEquals {
			dst = append(dst, '=')
			dst = appendPercentEncoded(dst, v)
		}
	}
	return dst
}

// appendCanonicalHeaders appends the signed headers, in the order listed,
// as "name:value\n" lines; a header given several times has its trimmed
// values sorted and joined with commas. Host is the Host as received.
func appendCanonicalHeaders(dst []byte, r *http.Request, signed []string) []byte {
	for _, h := range signed {
		dst = append(dst, h...)
		dst = append(dst, ':')
		if h == "host" {
			dst = append(dst, strings.TrimSpace(r.Host)...)
		} else if vals := r.Header.Values(h); len(vals) == 1 {
			dst = append(dst, strings.TrimSpace(vals[0])...)
		} else {
			trimmed := make([]string, len(vals))
			for i, x := range vals {
				trimmed[i] = strings.TrimSpace(x)
			}
			slices.Sort(trimmed)
			for i, x := range trimmed {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, x...)
			}
		}
		dst = append(dst, '\n')
	}
	return dst
}

// parseSignedHeaders checks the SignedHeaders list: lower case, no
// repeats, and every header the server acts on included.
func parseSignedHeaders(s string) ([]string, error) {
	list := strings.Split(s, ";")
	seen := make(map[string]bool, len(list))
	for _, h := range list {
		if h == "" || h != strings.ToLower(h) || seen[h] {
			return nil, incomplete("SignedHeaders is malformed")
		}
		seen[h] = true
	}
	for _, h := range acsRequiredHeaders {
		if !seen[h] {
			return nil, incomplete("SignedHeaders must include %s", h)
		}
	}
	return list, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// acs4SigningKey derives the ACS4 key: HMAC-SHA256 chained over the date,
// region, product and "aliyun_v4_request", starting from "aliyun_v4"+secret.
func acs4SigningKey(secret, date, region, product string) []byte {
	k := hmacSHA256([]byte("aliyun_v4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, product)
	return hmacSHA256(k, "aliyun_v4_request")
}

// parseTimestamp reads an ISO 8601 UTC timestamp.
func parseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, apiError(http.StatusBadRequest, CodeTimestampFormat,
			"the timestamp must be ISO 8601 in UTC, as yyyy-MM-ddTHH:mm:ssZ")
	}
	return t, nil
}

// checkTime refuses a timestamp more than the accepted skew from now.
func (v *verifier) checkTime(t, now time.Time) error {
	skew := v.skew
	if skew <= 0 {
		skew = MaxClockSkew
	}
	d := now.Sub(t)
	if d > skew || d < -skew {
		return apiError(http.StatusBadRequest, CodeTimestampExpired,
			"the request timestamp is more than %v away from the server time %s", skew, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkNonce(n string) error {
	if n == "" || len(n) > maxNonce {
		return incomplete("the signature nonce must be 1 to %d characters", maxNonce)
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x21 || n[i] > 0x7e {
			return incomplete("the signature nonce must be printable ASCII")
		}
	}
	return nil
}

func (v *verifier) lookup(id string) (wire.AccessKey, error) {
	if v.keys != nil {
		if k, ok := v.keys.Lookup(id); ok && k.AccessKeySecret != "" {
			return k, nil
		}
	}
	return wire.AccessKey{}, apiError(http.StatusNotFound, CodeAccessKeyNotFound, "the access key id is not known")
}

// verifyACS checks an ACS3-HMAC-SHA256 or ACS4-HMAC-SHA256 Authorization.
// acsCredential is an ACS3 Credential (the access key id) or an ACS4 one
// (AccessKeyId/yyyymmdd/region/product/aliyun_v4_request).
type acsCredential struct {
	accessKeyID, date, region, product string
}

// parseACSCredential splits and checks the Credential of an alg request.
func parseACSCredential(alg, credential string) (acsCredential, error) {
	if alg != SchemeACS4 {
		return acsCredential{accessKeyID: credential}, nil
	}
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aliyun_v4_request" || scope[0] == "" || scope[2] == "" || len(scope[1]) != 8 {
		return acsCredential{}, incomplete("the ACS4 credential must be AccessKeyId/yyyymmdd/region/product/aliyun_v4_request")
	}
	if !strings.EqualFold(scope[3], "kms") {
		return acsCredential{}, incomplete("the ACS4 credential scope names product %q, not Kms", provider.Clip(scope[3], 32))
	}
	return acsCredential{accessKeyID: scope[0], date: scope[1], region: scope[2], product: scope[3]}, nil
}

// acsSignature appends to dst the HMAC-SHA256 under signingKey of the
// ACS3/ACS4 string to sign: the algorithm and the hex SHA-256 of the
// canonical request. One buffer, no intermediate strings: this runs for
// every request.
func acsSignature(dst []byte, alg string, r *http.Request, rr *rawRequest, signed []string, signedHeaders, payload string, signingKey []byte) []byte {
	buf := make([]byte, 0, 1024)
	buf = append(buf, r.Method...)
	buf = append(buf, "\n/\n"...)
	buf = appendCanonicalQuery(buf, rr.Query, alg == SchemeACS4)
	buf = append(buf, '\n')
	buf = appendCanonicalHeaders(buf, r, signed)
	buf = append(buf, '\n')
	buf = append(buf, signedHeaders...) // = signed joined with ";"
	buf = append(buf, '\n')
	buf = append(buf, payload...)
	creqSum := sha256.Sum256(buf)
	sts := append(append(buf[:0], alg...), '\n')
	sts = hex.AppendEncode(sts, creqSum[:])
	m := hmac.New(sha256.New, signingKey)
	m.Write(sts)
	return m.Sum(dst)
}

func (v *verifier) verifyACS(alg, rest string, r *http.Request, rr *rawRequest, body []byte, now time.Time) (*authResult, error) {
	parts, err := parseAuthorization(rest)
	if err != nil {
		return nil, err
	}
	signed, err := parseSignedHeaders(parts.SignedHeaders)
	if err != nil {
		return nil, err
	}
	cred, err := parseACSCredential(alg, parts.Credential)
	if err != nil {
		return nil, err
	}
	var sig [sha256.Size]byte
	if len(parts.Signature) != 2*sha256.Size || strings.ToLower(parts.Signature) != parts.Signature {
		return nil, incomplete("the signature must be %d lower-case hex digits", 2*sha256.Size)
	}
	if _, err := hex.Decode(sig[:], []byte(parts.Signature)); err != nil {
		return nil, incomplete("the signature must be %d lower-case hex digits", 2*sha256.Size)
	}
	key, err := v.lookup(cred.accessKeyID)
	if err != nil {
		return nil, err
	}
	nonce := r.Header.Get("x-acs-signature-nonce")
	if err := checkNonce(nonce); err != nil {
		return nil, err
	}
	ts := r.Header.Get("x-acs-date")
	if ts == "" {
		return nil, incomplete("the x-acs-date header is missing")
	}
	action := r.Header.Get("x-acs-action")
	if action == "" {
		return nil, incomplete("the x-acs-action header is missing")
	}
	payload := r.Header.Get("x-acs-content-sha256")
	bodySum := sha256.Sum256(body)
	var bodyHex [2 * sha256.Size]byte
	hex.Encode(bodyHex[:], bodySum[:])
	if !strings.EqualFold(payload, string(bodyHex[:])) {
		return nil, mismatch("x-acs-content-sha256 is not the SHA-256 of the body")
	}
	var signingKey []byte
	if alg == SchemeACS4 {
		signingKey = acs4SigningKey(key.AccessKeySecret, cred.date, cred.region, cred.product)
	} else {
		signingKey = []byte(key.AccessKeySecret)
	}
	var mac [sha256.Size]byte
	if !hmac.Equal(acsSignature(mac[:0], alg, r, rr, signed, parts.SignedHeaders, payload, signingKey), sig[:]) {
		return nil, mismatch("the request signature does not match the signature computed with the access key secret")
	}
	t, err := parseTimestamp(ts)
	if err != nil {
		return nil, err
	}
	if alg == SchemeACS4 && t.UTC().Format("20060102") != cred.date {
		return nil, mismatch("the ACS4 credential date does not match x-acs-date")
	}
	if err := v.checkTime(t, now); err != nil {
		return nil, err
	}
	if ver := r.Header.Get("x-acs-version"); ver != APIVersion {
		return nil, apiError(http.StatusBadRequest, CodeInvalidVersion, "p11kms serves KMS API version %s", APIVersion)
	}
	params := make(map[string]string, len(rr.All))
	for k, val := range rr.All {
		params[k] = val
	}
	delete(params, "RegionId")
	return &authResult{Scheme: alg, AccessKey: key, Action: action, Nonce: nonce, Time: t, Params: params}, nil
}

// verifyRPC checks the RPC HMAC-SHA1 Signature parameter: StringToSign =
// Method&%2F&percentEncode(canonical query of every parameter but
// Signature), key = secret+"&".
func (v *verifier) verifyRPC(r *http.Request, rr *rawRequest, now time.Time) (*authResult, error) {
	p := rr.All
	for _, k := range []string{"AccessKeyId", "SignatureNonce", "Timestamp", "Action"} {
		if p[k] == "" {
			return nil, incomplete("the %s parameter is missing", k)
		}
	}
	if p["SignatureMethod"] != "HMAC-SHA1" {
		return nil, incomplete("SignatureMethod must be HMAC-SHA1")
	}
	if p["SignatureVersion"] != "1.0" {
		return nil, incomplete("SignatureVersion must be 1.0")
	}
	if p["SignatureType"] != "" {
		return nil, incomplete("SignatureType %s is not supported", quoteName(p["SignatureType"]))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(p["Signature"])
	if err != nil || len(sig) != sha1.Size {
		return nil, incomplete("the Signature parameter must be a base64 HMAC-SHA1")
	}
	if err := checkNonce(p["SignatureNonce"]); err != nil {
		return nil, err
	}
	key, err := v.lookup(p["AccessKeyId"])
	if err != nil {
		return nil, err
	}
	signedParams := make(map[string]string, len(p))
	for k, val := range p {
		if k != "Signature" {
			signedParams[k] = val
		}
	}
	sts := r.Method + "&%2F&" + percentEncode(canonicalQuery(signedParams, false))
	m := hmac.New(sha1.New, []byte(key.AccessKeySecret+"&"))
	m.Write([]byte(sts))
	if !hmac.Equal(m.Sum(nil), sig) {
		return nil, mismatch("the request signature does not match the signature computed with the access key secret")
	}
	t, err := parseTimestamp(p["Timestamp"])
	if err != nil {
		return nil, err
	}
	if err := v.checkTime(t, now); err != nil {
		return nil, err
	}
	if p["Version"] != APIVersion {
		return nil, apiError(http.StatusBadRequest, CodeInvalidVersion, "p11kms serves KMS API version %s", APIVersion)
	}
	if f := p["Format"]; f != "" && !strings.EqualFold(f, "json") {
		return nil, provider.InvalidParam("Format", "p11kms answers only JSON")
	}
	params := make(map[string]string, len(p))
	for k, val := range p {
		params[k] = val
	}
	for _, k := range rpcProtocolParams {
		delete(params, k)
	}
	return &authResult{Scheme: SchemeRPC, AccessKey: key, Action: p["Action"], Nonce: p["SignatureNonce"], Time: t, Params: params}, nil
}
