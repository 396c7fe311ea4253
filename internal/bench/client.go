package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Signature names how the bench's own client signs its requests (the
// values of `p11kms bench --server-signature`).
type Signature string

// The signatures the client computes itself (docs/WIRE.md, "Signatures").
const (
	// SignatureACS3 is Alibaba's ACS3-HMAC-SHA256 (the v3 SDK's default).
	SignatureACS3 Signature = "acs3"
	// SignatureRPC is Alibaba's RPC HMAC-SHA1 (SignatureVersion 1.0).
	SignatureRPC Signature = "rpc"
	// SignatureTC3 is Tencent's TC3-HMAC-SHA256 over a JSON POST.
	SignatureTC3 Signature = "tc3"
)

// Signatures lists the accepted signatures, the default first.
var Signatures = []Signature{SignatureACS3, SignatureRPC, SignatureTC3}

// Tencent sends this region; p11kms accepts and ignores any.
const tencentRegion = "ap-guangzhou"

// API versions the two dialects are served under.
const (
	alibabaVersion = "2016-01-20"
	tencentVersion = "2019-01-18"
)

// alibabaTime is the ISO 8601 form of x-acs-date and Timestamp.
const alibabaTime = "2006-01-02T15:04:05Z"

// Signer signs KMS requests with one access key for one host. The code is
// p11kms's own, written from the canonical forms in docs/WIRE.md; tests
// check it against the official SDKs.
type Signer struct {
	Scheme          Signature // how requests are signed
	Host            string    // host:port, as in the Host header and signed
	AccessKeyId     string    // the access key (Tencent: SecretId) named in each request
	AccessKeySecret string    // its secret (Tencent: SecretKey), never sent
}

// Sign builds the signed request for action with params at now. nonce is
// the Alibaba signature nonce (TC3 has none; it is ignored there).
// Alibaba requests carry every parameter in the query and an empty body;
// TC3 requests carry params as a JSON object of strings.
func (s *Signer) Sign(action string, params map[string]string, now time.Time, nonce string) (*http.Request, error) {
	switch s.Scheme {
	case SignatureACS3:
		return s.signACS3(action, params, now, nonce)
	case SignatureRPC:
		return s.signRPC(action, params, now, nonce)
	case SignatureTC3:
		body, err := json.Marshal(params)
		if err != nil {
			return nil, err
		}
		return s.signTC3(action, body, now)
	}
	return nil, fmt.Errorf("signature %q: accepted %s", s.Scheme, joinSignatures())
}

func joinSignatures() string {
	names := make([]string, len(Signatures))
	for i, sig := range Signatures {
		names[i] = string(sig)
	}
	return strings.Join(names, ", ")
}

// newRequest is a POST to / on the signer's host with body.
func (s *Signer) newRequest(query string, body []byte) (*http.Request, error) {
	u := "http://" + s.Host + "/"
	if query != "" {
		u += "?" + query
	}
	return http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
}

// signACS3: the canonical request is method, "/", the canonical query, the
// signed headers as name:value lines, an empty line, the signed header
// names and the body's SHA-256; the signature is HMAC-SHA256 under the
// secret of "ACS3-HMAC-SHA256\n" + hex SHA-256 of it.
func (s *Signer) signACS3(action string, params map[string]string, now time.Time, nonce string) (*http.Request, error) {
	query := alibabaQuery(params)
	req, err := s.newRequest(query, nil)
	if err != nil {
		return nil, err
	}
	emptySum := sha256.Sum256(nil)
	headers := [][2]string{ // sorted by name, as signed
		{"host", s.Host},
		{"x-acs-action", action},
		{"x-acs-content-sha256", hex.EncodeToString(emptySum[:])},
		{"x-acs-date", now.UTC().Format(alibabaTime)},
		{"x-acs-signature-nonce", nonce},
		{"x-acs-version", alibabaVersion},
	}
	var canon strings.Builder
	canon.WriteString("POST\n/\n" + query + "\n")
	names := make([]string, len(headers))
	for i, h := range headers {
		canon.WriteString(h[0] + ":" + h[1] + "\n")
		names[i] = h[0]
		if h[0] != "host" {
			req.Header.Set(h[0], h[1])
		}
	}
	signed := strings.Join(names, ";")
	canon.WriteString("\n" + signed + "\n" + headers[2][1])
	canonSum := sha256.Sum256([]byte(canon.String()))
	mac := hmacSum(sha256.New, []byte(s.AccessKeySecret), "ACS3-HMAC-SHA256\n"+hex.EncodeToString(canonSum[:]))
	req.Header.Set("Authorization", "ACS3-HMAC-SHA256 Credential="+s.AccessKeyId+",SignedHeaders="+signed+
		",Signature="+hex.EncodeToString(mac))
	return req, nil
}

// signRPC: the protocol parameters join params; the string to sign is
// "POST&%2F&" + the percent-encoded canonical query, the key secret + "&",
// the Signature the base64 of the HMAC-SHA1.
func (s *Signer) signRPC(action string, params map[string]string, now time.Time, nonce string) (*http.Request, error) {
	all := make(map[string]string, len(params)+9)
	for k, v := range params {
		all[k] = v
	}
	all["AccessKeyId"] = s.AccessKeyId
	all["Action"] = action
	all["Format"] = "json" // as the SDKs send it
	all["SignatureMethod"] = "HMAC-SHA1"
	all["SignatureNonce"] = nonce
	all["SignatureVersion"] = "1.0"
	all["Timestamp"] = now.UTC().Format(alibabaTime)
	all["Version"] = alibabaVersion
	query := alibabaQuery(all)
	mac := hmacSum(sha1.New, []byte(s.AccessKeySecret+"&"), "POST&%2F&"+alibabaEncode(query))
	return s.newRequest(query+"&Signature="+alibabaEncode(base64.StdEncoding.EncodeToString(mac)), nil)
}

// signTC3: the canonical request is "POST\n/\n\n", the content-type and
// host lines, an empty line, "content-type;host" and the body's SHA-256;
// the key is HMAC-SHA256 chained from "TC3"+secret over the date, "kms"
// and "tc3_request".
func (s *Signer) signTC3(action string, body []byte, now time.Time) (*http.Request, error) {
	req, err := s.newRequest("", body)
	if err != nil {
		return nil, err
	}
	const contentType = "application/json"
	bodySum := sha256.Sum256(body)
	canon := "POST\n/\n\ncontent-type:" + contentType + "\nhost:" + s.Host + "\n\ncontent-type;host\n" + hex.EncodeToString(bodySum[:])
	canonSum := sha256.Sum256([]byte(canon))
	date := now.UTC().Format("2006-01-02")
	scope := date + "/kms/tc3_request"
	ts := strconv.FormatInt(now.Unix(), 10)
	key := hmacSum(sha256.New, []byte("TC3"+s.AccessKeySecret), date)
	key = hmacSum(sha256.New, key, "kms")
	key = hmacSum(sha256.New, key, "tc3_request")
	mac := hmacSum(sha256.New, key, "TC3-HMAC-SHA256\n"+ts+"\n"+scope+"\n"+hex.EncodeToString(canonSum[:]))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-TC-Action", action)
	req.Header.Set("X-TC-Version", tencentVersion)
	req.Header.Set("X-TC-Timestamp", ts)
	req.Header.Set("X-TC-Region", tencentRegion)
	req.Header.Set("Authorization", "TC3-HMAC-SHA256 Credential="+s.AccessKeyId+"/"+scope+
		", SignedHeaders=content-type;host, Signature="+hex.EncodeToString(mac))
	return req, nil
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	io.WriteString(m, msg)
	return m.Sum(nil)
}

// alibabaQuery is the canonical query: names sorted, names and values
// percent-encoded, "name=value" joined by "&".
func alibabaQuery(params map[string]string) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(alibabaEncode(k) + "=" + alibabaEncode(params[k]))
	}
	return b.String()
}

// alibabaEncode percent-encodes every byte but RFC 3986's unreserved
// characters, in upper-case hex (a space is %20, * is %2A, ~ stays).
func alibabaEncode(s string) string {
	const digits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&15])
		}
	}
	return b.String()
}

// NewNonce is a fresh Alibaba signature nonce: 16 random bytes in hex.
func NewNonce() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Client sends signed requests over one keep-alive transport that keeps
// an idle connection for every concurrent caller.
type Client struct {
	Signer Signer       // signs each request
	HTTP   *http.Client // sends it, over the keep-alive transport
}

// NewClient is a Client for concurrency callers.
func NewClient(s Signer, concurrency int) *Client {
	tr := &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, DisableCompression: true}
	return &Client{Signer: s, HTTP: &http.Client{Transport: tr}}
}

// Call signs action with params now, with a fresh nonce, sends it and
// returns the API's error (its code and message) if the call failed.
func (c *Client) Call(ctx context.Context, action string, params map[string]string) error {
	req, err := c.Signer.Sign(action, params, time.Now(), NewNonce())
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return responseError(c.Signer.Scheme, resp.StatusCode, body)
}

// responseError is the error an answer carries: Alibaba's by HTTP status
// and {"Code","Message"}; Tencent's in Response.Error (with status 200).
func responseError(scheme Signature, status int, body []byte) error {
	if scheme == SignatureTC3 {
		if status == http.StatusOK && !bytes.Contains(body, []byte(`"Error"`)) {
			return nil
		}
		var r struct {
			Response struct {
				Error struct{ Code, Message string }
			}
		}
		if json.Unmarshal(body, &r) != nil || r.Response.Error.Code == "" {
			return fmt.Errorf("HTTP %d: %.200s", status, body)
		}
		return fmt.Errorf("%s: %s", r.Response.Error.Code, r.Response.Error.Message)
	}
	if status == http.StatusOK {
		return nil
	}
	var r struct{ Code, Message string }
	if json.Unmarshal(body, &r) != nil || r.Code == "" {
		return fmt.Errorf("HTTP %d: %.200s", status, body)
	}
	return errors.New(r.Code + ": " + r.Message)
}
