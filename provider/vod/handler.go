package vod

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// KeyHandler returns the HLS key-delivery handler: mount it as
// mux.Handle(HLSKeyPattern, s.KeyHandler()). It answers
//
//	GET /hls/key?Ciphertext=<CiphertextBlob>&MtsHlsUriToken=<token>
//
// with the 16 raw key bytes (200, application/octet-stream, Cache-Control:
// no-store). A missing or malformed Ciphertext is 400; a missing, malformed,
// forged, expired or other-Ciphertext token is 403; a Ciphertext that is not
// an HLS key of this service is 400; a disabled or deleted media key is 403;
// a token fault is 503. Error bodies are one line of text and never hold key
// bytes. It needs no request signature (players cannot sign): the token is
// the credential.
func (s *Service) KeyHandler() http.Handler {
	return http.HandlerFunc(s.serveKey)
}

func (s *Service) serveKey(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		s.refuse(w, r, http.StatusMethodNotAllowed, "method not allowed", nil, nil)
		return
	}
	q := r.URL.Query()
	ct, err := parseCiphertext("Ciphertext", q.Get("Ciphertext"))
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, provider.AsError(err).Message, nil, err)
		return
	}
	if err := s.VerifyPlayToken(r.Context(), ct, q.Get("MtsHlsUriToken")); err != nil {
		if isPlayTokenError(err) {
			s.refuse(w, r, http.StatusForbidden, err.Error(), ct, err)
		} else {
			s.refuse(w, r, http.StatusServiceUnavailable, "the key service is unavailable", ct, err)
		}
		return
	}
	key, err := s.decryptFor(r.Context(), base64.StdEncoding.EncodeToString(ct), HLSEncryptionContext(), HLSKeyBytes)
	if err != nil {
		switch provider.ErrorCode(err) {
		case provider.CodeInvalidCiphertext, provider.CodeInvalidParameter:
			s.refuse(w, r, http.StatusBadRequest, "Ciphertext: not an HLS data key of this service", ct, err)
		case provider.CodeKeyNotFound, provider.CodeAliasNotFound, provider.CodeDisabled, provider.CodePendingDeletion:
			s.refuse(w, r, http.StatusForbidden, "the media key is not usable", ct, err)
		default:
			s.refuse(w, r, http.StatusServiceUnavailable, "the key service is unavailable", ct, err)
		}
		return
	}
	defer wrap.ZeroBytes(key)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(key)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(key)
	}
}

// refuse writes an error answer and logs why (never the token or key).
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, status int, msg string, ct []byte, cause error) {
	attrs := []any{"status", status, "remote", r.RemoteAddr, "reason", msg}
	if ct != nil {
		sum := sha256.Sum256(ct)
		attrs = append(attrs, "ciphertext_sha256", hex.EncodeToString(sum[:8]))
	}
	if cause != nil && status >= 500 {
		attrs = append(attrs, "error", cause.Error())
	}
	s.log.WarnContext(r.Context(), "vod: hls key refused", attrs...)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write([]byte(msg + "\n"))
	}
}

// isPlayTokenError reports whether err is a refusal of the token itself.
func isPlayTokenError(err error) bool {
	for _, e := range []error{ErrPlayTokenMissing, ErrPlayTokenMalformed, ErrPlayTokenVersion, ErrPlayTokenInvalid, ErrPlayTokenExpired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
