package tencent

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/sigv4"
	"github.com/p11kms/p11kms/provider/wire"
)

// Signature schemes, as recorded in a request's scheme.
const (
	SchemeTC3        = "TC3-HMAC-SHA256"
	SchemeV1SHA1     = "HmacSHA1"
	SchemeV1SHA256   = "HmacSHA256"
	tc3Service       = "kms"
	tc3Terminator    = "tc3_request"
	unsignedPayload  = "UNSIGNED-PAYLOAD"
	maxSignedHeaders = 16
)

// TimestampWindow is how far a request's timestamp may be from the
// server's clock, either way (Tencent's five minutes).
const TimestampWindow = 300 * time.Second

// v1Common are the v1 common parameters: signed, but not action parameters.
var v1Common = []string{"Action", "Version", "Region", "Timestamp", "Nonce", "SecretId",
	"Signature", "SignatureMethod", "Language", "RequestClient", "Token"}

// request is an authenticated (or, on error, partly parsed) request.
type request struct {
	scheme   string
	action   string
	version  string
	region   string
	secretID string         // as claimed; authenticated only when err == nil
	key      wire.AccessKey // the access key, once authenticated
	json     []byte         // TC3 POST: the JSON body
	flat     map[string]string
	isJSON   bool
	// replay is the replay rule (TC3 signature reuse, v1 nonce), built
	// once the signature verified and claimed only after the rate limit
	// and the policy check passed (call.authorize).
	replay *wire.ReplayClaim
}

// authenticateRequest checks the signature and timestamp on the
// pipeline's request (query string and form body parsed once) and leaves
// the replay rule in p.replay, unclaimed.
func (h *handler) authenticateRequest(req *wire.Request, body []byte, now time.Time) (*request, error) {
	r := req.HTTP
	p := &request{}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return p, errorf(CodeUnsupportedProtocol, "the method %s is not accepted: use POST or GET", provider.Clip(r.Method, 16))
	}
	var err error
	if auth := r.Header.Values("Authorization"); len(auth) > 1 {
		return p, errorf(CodeInvalidAuthorization, "more than one Authorization header")
	} else if len(auth) == 1 {
		err = h.verifyTC3(p, req, auth[0], body, now)
	} else {
		err = h.verifyV1(p, req, now)
	}
	return p, err
}

// header returns the one value of a header ("" if absent); several values
// are refused.
func header(r *http.Request, name string) (string, error) {
	v := r.Header.Values(name)
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", errorf(CodeInvalidParameter, "the header %s appears more than once", name)
}

func requiredHeader(r *http.Request, name string) (string, error) {
	v, err := header(r, name)
	if err == nil && v == "" {
		err = errorf(CodeMissingParameter, "the header %s is required", name)
	}
	return v, err
}

// tc3Authorization is a parsed TC3 Authorization header.
type tc3Authorization struct {
	secretID, date, service, terminator string
	signedHeaders                       []string
	signature                           []byte
}

// parseTC3Authorization parses "TC3-HMAC-SHA256 Credential=<id>/<date>/
// <service>/tc3_request, SignedHeaders=<h1;h2>, Signature=<hex>" with
// SigV4's parser of the same three components (sigv4.ParseFields).
func parseTC3Authorization(s string) (*tc3Authorization, error) {
	bad := func(what string) error {
		return errorf(CodeInvalidAuthorization, "the Authorization header is not TC3-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...: %s", what)
	}
	f, err := sigv4.ParseFields(SchemeTC3, s)
	if se := (*sigv4.Error)(nil); errors.As(err, &se) {
		return nil, bad(se.Message)
	} else if err != nil {
		return nil, bad("malformed")
	}
	switch c := f.Credential; {
	case len(c) != 4 || c[0] == "":
		return nil, bad("Credential is not <SecretId>/<date>/<service>/tc3_request")
	case len(f.SignedHeaders) > maxSignedHeaders:
		return nil, bad("too many SignedHeaders")
	case !slices.Contains(f.SignedHeaders, "content-type") || !slices.Contains(f.SignedHeaders, "host"):
		return nil, bad("SignedHeaders must include content-type and host")
	}
	c := f.Credential
	return &tc3Authorization{secretID: c[0], date: c[1], service: c[2], terminator: c[3], signedHeaders: f.SignedHeaders, signature: f.Signature}, nil
}

// parseTimestamp parses a Unix-seconds timestamp and checks the window.
func parseTimestamp(s string, now time.Time, window time.Duration) (int64, error) {
	if s == "" || len(s) > 12 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errorf(CodeInvalidParameter, "Timestamp %q is not Unix seconds", provider.Clip(s, 24))
	}
	ts, _ := strconv.ParseInt(s, 10, 64)
	d := now.Sub(time.Unix(ts, 0))
	if d > window || d < -window {
		return 0, errorf(CodeSignatureExpire, "the request's timestamp %s is more than %d s away from the server's clock %s",
			time.Unix(ts, 0).UTC().Format(time.RFC3339), int(window/time.Second), now.UTC().Format(time.RFC3339))
	}
	return ts, nil
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// verifyTC3 checks a TC3-HMAC-SHA256 request.
func (h *handler) verifyTC3(p *request, req *wire.Request, authz string, body []byte, now time.Time) error {
	r := req.HTTP
	p.scheme = SchemeTC3
	a, err := parseTC3Authorization(authz)
	if err != nil {
		return err
	}
	p.secretID = a.secretID
	tsText, err := tc3Headers(p, r)
	if err != nil {
		return err
	}
	key, ok := h.keys.Lookup(a.secretID)
	if !ok {
		return errorf(CodeSecretIdNotFound, "the SecretId %s does not exist", provider.Clip(a.secretID, 64))
	}
	ts, err := parseTimestamp(tsText, now, h.window)
	if err != nil {
		return err
	}
	switch {
	case a.date != time.Unix(ts, 0).UTC().Format("2006-01-02"):
		return errorf(CodeSignatureFailure, "the credential scope date %s is not the UTC date of X-TC-Timestamp", provider.Clip(a.date, 16))
	case a.service != tc3Service:
		return errorf(CodeSignatureFailure, "the credential scope names service %s: this is kms", provider.Clip(a.service, 32))
	case a.terminator != tc3Terminator:
		return errorf(CodeSignatureFailure, "the credential scope must end with tc3_request")
	}
	if v, _ := header(r, "X-TC-Content-SHA256"); v == unsignedPayload {
		return errorf(CodeSignatureFailure, "unsigned payloads are not accepted: sign the body")
	}
	var query string
	switch r.Method {
	case http.MethodGet:
		query = r.URL.RawQuery
	case http.MethodPost:
		if r.URL.RawQuery != "" {
			return errorf(CodeInvalidParameter, "a POST request takes its parameters in the JSON body, not the query string")
		}
	}
	values, err := tc3SignedValues(r, a.signedHeaders)
	if err != nil {
		return err
	}
	if !tc3SignatureMatches(r, a, values, query, tsText, sigv4.HexSHA256(body), key.AccessKeySecret) {
		return errorf(CodeSignatureFailure, "the signature does not match the request: check the SecretKey and the signing steps")
	}
	ctx, u := req.HTTP.Context(), signatureUse(a, p, r.RemoteAddr)
	rule := &wire.SignatureReuse{Cache: h.replay, Grace: RetargetGrace, Refuse: h.refuse}
	if err := rule.Peek(ctx, u, now); err != nil {
		return err
	}
	p.replay = wire.NewReplayClaim(func() error { return rule.Claim(ctx, u, now) })
	p.key = key
	if r.Method == http.MethodPost {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return errorf(CodeInvalidParameter, "a TC3-HMAC-SHA256 POST request must have Content-Type application/json")
		}
		p.json, p.isJSON = body, true
		return nil
	}
	p.flat, err = checkFlat(req.Query())
	return err
}

// tc3Headers reads the TC3 headers into p (action, version, region) and
// returns X-TC-Timestamp; temporary credentials are refused.
func tc3Headers(p *request, r *http.Request) (timestamp string, err error) {
	if p.action, err = requiredHeader(r, "X-TC-Action"); err != nil {
		return "", err
	}
	if timestamp, err = requiredHeader(r, "X-TC-Timestamp"); err != nil {
		return "", err
	}
	if p.version, err = requiredHeader(r, "X-TC-Version"); err != nil {
		return "", err
	}
	if p.region, err = header(r, "X-TC-Region"); err != nil {
		return "", err
	}
	if tok, err := header(r, "X-TC-Token"); err != nil || tok != "" {
		return "", errorf(CodeTokenFailure, "temporary credentials (X-TC-Token) are not accepted: sign with a SecretId and SecretKey")
	}
	return timestamp, nil
}

// tc3SignedValues returns the values of the signed headers (host from the
// request line), trimmed; a signed header given twice is refused.
func tc3SignedValues(r *http.Request, signed []string) ([]string, error) {
	values := make([]string, 0, len(signed))
	for _, name := range signed {
		v := r.Host
		if name != "host" {
			vs := r.Header.Values(name)
			if len(vs) > 1 {
				return nil, errorf(CodeSignatureFailure, "the signed header %s appears more than once", name)
			}
			v = ""
			if len(vs) == 1 {
				v = vs[0]
			}
		}
		values = append(values, strings.TrimSpace(v))
	}
	return values, nil
}

// tc3SignatureMatches recomputes the TC3 signature, SigV4's layout with
// TC3's names (sigv4.CanonicalRequest, StringToSign, HMACChain), and
// compares it in constant time. Tencent's documentation lower-cases header
// values; the Go SDK signs content-type and host as it sends them. Either
// is accepted.
func tc3SignatureMatches(r *http.Request, a *tc3Authorization, values []string, query, timestamp, payloadHash, secret string) bool {
	signingKey := sigv4.HMACChain([]byte("TC3"+secret), a.date, a.service, tc3Terminator)
	scope := a.date + "/" + a.service + "/" + tc3Terminator
	verify := func(vs []string) bool {
		canonical := sigv4.CanonicalRequest(r.Method, "/", query, a.signedHeaders, vs, payloadHash)
		return hmac.Equal(hmacSum(sha256.New, signingKey, sigv4.StringToSign(SchemeTC3, timestamp, scope, canonical)), a.signature)
	}
	lower := make([]string, len(values))
	for i, v := range values {
		lower[i] = strings.ToLower(v)
	}
	return verify(lower) || (!slices.Equal(lower, values) && verify(values))
}

// flatParams parses a query or form string, refusing repeated names.
func flatParams(raw string) (map[string]string, error) { return checkFlat(url.ParseQuery(raw)) }

// checkFlat checks a parsed query or form, refusing repeated names.
func checkFlat(vals url.Values, err error) (map[string]string, error) {
	if err != nil {
		return nil, errorf(CodeInvalidParameter, "the parameters are not a valid URL-encoded string")
	}
	m := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return nil, errorf(CodeInvalidParameter, "the parameter %s appears more than once", provider.Clip(k, 64))
		}
		m[k] = v[0]
	}
	return m, nil
}

// v1StringToSign is METHOD ‖ host ‖ path ‖ "?" ‖ the sorted k=v pairs
// (values as sent, unencoded) joined by "&", without Signature.
func v1StringToSign(method, host, path string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(method)
	b.WriteString(host)
	b.WriteString(path)
	b.WriteByte('?')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// checkV1Split refuses v1 parameters that could make the string to sign
// split another way (v1StringToSign joins the sorted k=v pairs unencoded):
// a '&' or '=' in a name, or a '&' in a value followed by "N=" where N would
// sort between the value's name and the next name, i.e. where the same
// string reads as other pairs. Without them the string splits only into the
// pairs sent, so a captured request cannot be re-split into a new nonce (or
// any other parameter) under the same signature; a value such as
// {"t":"a&c=d"} whose "c" would sort elsewhere stays accepted.
func checkV1Split(params map[string]string) error {
	names := make([]string, 0, len(params))
	for k := range params {
		if strings.ContainsAny(k, "&=") {
			return errorf(CodeInvalidParameter, "the parameter name %q contains '&' or '=': not accepted in a v1 request", provider.Clip(k, 64))
		}
		if k != "Signature" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for i, k := range names {
		pieces := strings.Split(params[k], "&")
		for _, piece := range pieces[1:] {
			n, _, isPair := strings.Cut(piece, "=")
			if isPair && n > k && (i+1 == len(names) || n < names[i+1]) {
				return errorf(CodeInvalidParameter, "the parameter %s contains \"&%s=\", which makes the v1 string to sign ambiguous: "+
					"accepted are values without a '&' followed by a parameter name (or sign with TC3-HMAC-SHA256)", provider.Clip(k, 64), provider.Clip(n, 64))
			}
		}
	}
	return nil
}

// verifyV1 checks a legacy HmacSHA1/HmacSHA256 request (parameters in the
// query for GET, in a form body for POST).
func (h *handler) verifyV1(p *request, req *wire.Request, now time.Time) error {
	r := req.HTTP
	parsed := req.Query
	if r.Method == http.MethodPost {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/x-www-form-urlencoded" {
			return errorf(CodeInvalidAuthorization, "the request is not signed: no Authorization header (TC3-HMAC-SHA256) and no form-encoded v1 parameters")
		}
		if r.URL.RawQuery != "" {
			return errorf(CodeInvalidParameter, "a v1 POST request takes its parameters in the form body, not the query string")
		}
		parsed = req.Form
	}
	params, err := checkFlat(parsed())
	if err != nil {
		return err
	}
	if err := checkV1Split(params); err != nil {
		return err
	}
	p.secretID, p.action, p.version, p.region = params["SecretId"], params["Action"], params["Version"], params["Region"]
	if p.secretID == "" {
		return errorf(CodeInvalidAuthorization, "the request is not signed: no Authorization header (TC3-HMAC-SHA256) and no SecretId parameter (v1)")
	}
	for _, name := range []string{"Signature", "Timestamp", "Nonce", "Action", "Version"} {
		if params[name] == "" {
			return errorf(CodeMissingParameter, "the parameter %s is required", name)
		}
	}
	if params["Token"] != "" {
		return errorf(CodeTokenFailure, "temporary credentials (Token) are not accepted: sign with a SecretId and SecretKey")
	}
	var mac func() hash.Hash
	switch p.scheme = params["SignatureMethod"]; p.scheme {
	case "", SchemeV1SHA1:
		p.scheme, mac = SchemeV1SHA1, sha1.New
	case SchemeV1SHA256:
		mac = sha256.New
	default:
		return errorf(CodeInvalidParameterVal, "SignatureMethod %q: accepted HmacSHA1, HmacSHA256", provider.Clip(p.scheme, 32))
	}
	nonce := params["Nonce"]
	if n, err := strconv.ParseUint(nonce, 10, 64); err != nil || n == 0 || nonce[0] == '0' {
		return errorf(CodeInvalidParameterVal, "Nonce %q: accepted a positive integer (decimal digits, no sign or leading zero, at most 20 digits)", provider.Clip(nonce, 32))
	}
	key, ok := h.keys.Lookup(p.secretID)
	if !ok {
		return errorf(CodeSecretIdNotFound, "the SecretId %s does not exist", provider.Clip(p.secretID, 64))
	}
	if _, err := parseTimestamp(params["Timestamp"], now, h.window); err != nil {
		return err
	}
	given, err := base64.StdEncoding.DecodeString(params["Signature"])
	if err != nil {
		return errorf(CodeSignatureFailure, "the Signature is not base64")
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	want := hmacSum(mac, []byte(key.AccessKeySecret), v1StringToSign(r.Method, r.Host, path, params))
	if !hmac.Equal(want, given) {
		return errorf(CodeSignatureFailure, "the signature does not match the request: check the SecretKey and the signing steps")
	}
	ctx, value := req.HTTP.Context(), "v1\n"+nonce
	if seen, err := h.replay.Peek(ctx, p.secretID, value, h.refuse); err != nil || seen {
		return cmp.Or(err, h.refuse(wire.Replayed))
	}
	p.replay = wire.NewReplayClaim(func() error { return h.replay.Claim(ctx, p.secretID, value, h.refuse) })
	p.key = key
	for _, k := range v1Common {
		delete(params, k)
	}
	p.flat = params
	return nil
}
