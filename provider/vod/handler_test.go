package vod_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/vod"
)

// keyServer serves the key handler of a VOD service that logs to a buffer.
func keyServer(t *testing.T, e *env) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	v, err := vod.New(vod.Config{KMS: e.kms, TokenKeyFile: e.kfile, Now: e.clk.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(vod.HLSKeyPattern, v.KeyHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &logs
}

func fetch(t *testing.T, method, u string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func keyURL(base, ct, tok string) string {
	q := url.Values{}
	if ct != "" {
		q.Set("Ciphertext", ct)
	}
	if tok != "" {
		q.Set("MtsHlsUriToken", tok)
	}
	return base + vod.HLSKeyPath + "?" + q.Encode()
}

func TestKeyHandler(t *testing.T) {
	e := newEnv(t)
	srv, logs := keyServer(t, e)
	gk, err := e.vod.GenerateKMSDataKey(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(gk.Plaintext)
	it, err := e.vod.IssuePlayToken(bg, &vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, Ttl: "1m", KeyUri: srv.URL + vod.HLSKeyPath})
	if err != nil {
		t.Fatal(err)
	}
	if len(it.MtsHlsUriToken) != vod.PlayTokenChars {
		t.Fatalf("token %q", it.MtsHlsUriToken)
	}
	if exp, err := time.Parse(time.RFC3339, it.Expiration); err != nil || exp.Sub(e.clk.Now()) > time.Minute || exp.Sub(e.clk.Now()) < 58*time.Second {
		t.Fatalf("Expiration %s (now %s): %v", it.Expiration, e.clk.Now(), err)
	}

	// The key URI of IssuePlayToken works as is (its '+' and '/' escaped).
	code, h, body := fetch(t, http.MethodGet, it.KeyUri)
	if code != 200 || !bytes.Equal(body, key) {
		t.Fatalf("GET: %d %q", code, body)
	}
	if h.Get("Content-Type") != "application/octet-stream" || h.Get("Cache-Control") != "no-store" || h.Get("Content-Length") != "16" {
		t.Fatalf("headers %v", h)
	}
	code, h, body = fetch(t, http.MethodHead, it.KeyUri)
	if code != 200 || len(body) != 0 || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("HEAD: %d %q %v", code, body, h)
	}
	code, _, _ = fetch(t, http.MethodPost, it.KeyUri)
	if code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", code)
	}

	other, err := e.vod.GenerateKMSDataKey(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherTok, err := e.vod.IssuePlayToken(bg, &vod.IssuePlayTokenRequest{Ciphertext: other.CiphertextBlob})
	if err != nil {
		t.Fatal(err)
	}
	tok := it.MtsHlsUriToken
	flip := "A"
	if tok[30] == 'A' {
		flip = "B"
	}
	forged := tok[:30] + flip + tok[31:] // a MAC byte changed
	blob, _ := base64.StdEncoding.DecodeString(gk.CiphertextBlob)
	blob[0] = 0x02
	badVersion := base64.StdEncoding.EncodeToString(blob)
	urlSafe := base64.RawURLEncoding.EncodeToString(mustB64(t, gk.CiphertextBlob))
	cases := []struct {
		name   string
		ct     string
		tok    string
		status int
		body   string
	}{
		{"url-safe ciphertext", urlSafe, tok, 200, ""},
		{"missing ciphertext", "", tok, 400, "Ciphertext: is required"},
		{"ciphertext not base64", "!!!", tok, 400, "not base64"},
		{"ciphertext not a blob", badVersion, tok, 400, "not a CiphertextBlob"},
		{"ciphertext too long", strings.Repeat("A", 2000), tok, 400, "at most"},
		{"missing token", gk.CiphertextBlob, "", 403, "missing"},
		{"malformed token", gk.CiphertextBlob, "abc", 403, "malformed"},
		{"token not base64url", gk.CiphertextBlob, strings.Repeat("+", vod.PlayTokenChars), 403, "malformed"},
		{"forged token", gk.CiphertextBlob, forged, 403, "not valid for this Ciphertext"},
		{"token of another ciphertext", gk.CiphertextBlob, otherTok.MtsHlsUriToken, 403, "not valid for this Ciphertext"},
		{"token of this ciphertext for another", other.CiphertextBlob, tok, 403, "not valid for this Ciphertext"},
	}
	for _, c := range cases {
		code, h, body := fetch(t, http.MethodGet, keyURL(srv.URL, c.ct, c.tok))
		if code != c.status || !strings.Contains(string(body), c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.status, c.body)
		}
		if code != 200 && (bytes.Contains(body, key) || h.Get("Content-Type") == "application/octet-stream") {
			t.Errorf("%s: key bytes in a refusal", c.name)
		}
	}

	// Expired: the clock passes the expiry.
	e.clk.Add(61 * time.Second)
	code, _, body = fetch(t, http.MethodGet, it.KeyUri)
	if code != 403 || !strings.Contains(string(body), "expired") {
		t.Fatalf("expired: %d %q", code, body)
	}

	// A disabled media key stops delivery.
	e.clk.Add(-61 * time.Second)
	if _, err := e.kms.DisableKey(bg, &provider.KeyIdRequest{KeyId: gk.KeyId}); err != nil {
		t.Fatal(err)
	}
	code, _, body = fetch(t, http.MethodGet, it.KeyUri)
	if code != 403 || bytes.Contains(body, key) {
		t.Fatalf("disabled key: %d %q", code, body)
	}

	// Logs say why, never with the key or the token.
	l := logs.String()
	if !strings.Contains(l, "hls key refused") || strings.Contains(l, tok) || strings.Contains(l, gk.Plaintext) || bytes.Contains(logs.Bytes(), key) {
		t.Fatalf("logs:\n%s", l)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIssuePlayTokenValidation(t *testing.T) {
	e := newEnv(t)
	gk, err := e.vod.GenerateKMSDataKey(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req   vod.IssuePlayTokenRequest
		code  string
		param string
	}{
		{vod.IssuePlayTokenRequest{}, provider.CodeInvalidParameter, "Ciphertext"},
		{vod.IssuePlayTokenRequest{Ciphertext: "%%%"}, provider.CodeInvalidParameter, "Ciphertext"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, Ttl: "0s"}, provider.CodeInvalidParameter, "Ttl"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, Ttl: "500ms"}, provider.CodeInvalidParameter, "Ttl"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, Ttl: "169h"}, provider.CodeInvalidParameter, "Ttl"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, Ttl: "99999999999999999"}, provider.CodeInvalidParameter, "Ttl"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, Ttl: "ten minutes"}, provider.CodeInvalidParameter, "Ttl"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, KeyUri: "ftp://x/hls/key"}, provider.CodeInvalidParameter, "KeyUri"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, KeyUri: "/hls/key"}, provider.CodeInvalidParameter, "KeyUri"},
		{vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, KeyUri: "http://h/hls/key?MtsHlsUriToken=x"}, provider.CodeInvalidParameter, "KeyUri"},
	} {
		_, err := e.vod.IssuePlayToken(bg, &c.req)
		if provider.ErrorCode(err) != c.code || !strings.HasPrefix(provider.AsError(err).Message, c.param+":") {
			t.Errorf("%+v: %v, want %s naming %s", c.req, err, c.code, c.param)
		}
	}
	// Seconds are accepted as a TTL.
	r, err := e.vod.IssuePlayToken(bg, &vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob, Ttl: "90"})
	if err != nil {
		t.Fatal(err)
	}
	if exp, _ := time.Parse(time.RFC3339, r.Expiration); exp.Sub(e.clk.Now()) < 89*time.Second {
		t.Fatalf("Ttl 90: %s", r.Expiration)
	}
	// A blob of another purpose under the media CMK gets no token.
	dl, err := e.vod.GenerateDownloadSecretKey(bg, &vod.GenerateDownloadSecretKeyRequest{AppIdentification: "com.example.app", AppDecryptKey: "Abcdefgh12345678"})
	if err != nil {
		t.Fatal(err)
	}
	kf, _ := vod.ParseKeyFile(dl.AppEncryptKey)
	_, err = e.vod.IssuePlayToken(bg, &vod.IssuePlayTokenRequest{Ciphertext: base64.StdEncoding.EncodeToString(kf.CiphertextBlob)})
	wantCode(t, err, provider.CodeInvalidCiphertext)
}
