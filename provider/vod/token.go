package vod

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// PlayTokenVersion1 is the first byte of a v1 play token.
const PlayTokenVersion1 = 0x01

const (
	playTokenBytes = 1 + 8 + sha256.Size
	// PlayTokenChars is the length of a v1 MtsHlsUriToken.
	PlayTokenChars = (playTokenBytes*8 + 5) / 6
	playTokenLabel = "p11kms/vod/play-token"
)

// Why a play token was refused. Every refusal of a well-formed token whose
// MAC does not verify — forged, made with another key, or for another
// Ciphertext — is ErrPlayTokenInvalid. Expiry is checked only after the MAC
// verifies.
var (
	ErrPlayTokenMissing   = errors.New("vod: MtsHlsUriToken is missing")
	ErrPlayTokenMalformed = errors.New("vod: MtsHlsUriToken is malformed")
	ErrPlayTokenVersion   = errors.New("vod: MtsHlsUriToken has an unknown version")
	ErrPlayTokenInvalid   = errors.New("vod: MtsHlsUriToken is not valid for this Ciphertext")
	ErrPlayTokenExpired   = errors.New("vod: MtsHlsUriToken has expired")
)

// PlayToken is a parsed MtsHlsUriToken (format v1):
//
//	token = base64url-nopad( 0x01 ‖ expires ‖ mac )     (55 characters)
//	expires = uint64 big-endian Unix seconds (< 2^63)
//	mac = HMAC-SHA256(K, "p11kms/vod/play-token" ‖ 0x01 ‖ expires ‖ SHA-256(ciphertext))
//
// where ciphertext is the decoded CiphertextBlob the token unlocks and K is
// HKDF-SHA256(secret, no salt, "p11kms/vod/play-token/v1"), the secret being
// 32 bytes kept only as a CiphertextBlob under the media CMK (Config
// TokenKeyFile / TokenKeyBlob).
type PlayToken struct {
	Version byte
	Expires int64 // Unix seconds
	MAC     [sha256.Size]byte
}

// ParsePlayToken parses a token's syntax; it does not verify it. The
// encoding is strict: exactly one string encodes a token.
func ParsePlayToken(s string) (*PlayToken, error) {
	if s == "" {
		return nil, ErrPlayTokenMissing
	}
	if len(s) != PlayTokenChars {
		return nil, fmt.Errorf("%w: %d characters, want %d", ErrPlayTokenMalformed, len(s), PlayTokenChars)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != playTokenBytes {
		return nil, fmt.Errorf("%w: not base64url", ErrPlayTokenMalformed)
	}
	if b[0] != PlayTokenVersion1 {
		return nil, fmt.Errorf("%w 0x%02x (supported: 0x%02x)", ErrPlayTokenVersion, b[0], PlayTokenVersion1)
	}
	exp := binary.BigEndian.Uint64(b[1:9])
	if exp > math.MaxInt64 {
		return nil, fmt.Errorf("%w: expiry out of range", ErrPlayTokenMalformed)
	}
	t := &PlayToken{Version: b[0], Expires: int64(exp)}
	copy(t.MAC[:], b[9:])
	return t, nil
}

// String encodes the token.
func (t *PlayToken) String() string {
	var b [playTokenBytes]byte
	b[0] = t.Version
	binary.BigEndian.PutUint64(b[1:9], uint64(t.Expires))
	copy(b[9:], t.MAC[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// playMAC computes a v1 token's MAC.
func playMAC(key []byte, expires int64, ciphertext []byte) [sha256.Size]byte {
	h := sha256.Sum256(ciphertext)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(playTokenLabel))
	var hdr [9]byte
	hdr[0] = PlayTokenVersion1
	binary.BigEndian.PutUint64(hdr[1:], uint64(expires))
	m.Write(hdr[:])
	m.Write(h[:])
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// parseCiphertext decodes a Ciphertext parameter (standard or URL-safe
// base64 of a CiphertextBlob) and checks its syntax.
func parseCiphertext(param, s string) ([]byte, error) {
	if s == "" {
		return nil, provider.InvalidParam(param, "is required: the CiphertextBlob from GenerateKMSDataKey")
	}
	if len(s) > MaxCiphertextChars {
		return nil, provider.InvalidParam(param, "is %d characters; at most %d", len(s), MaxCiphertextChars)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawURLEncoding.DecodeString(s); err != nil {
			return nil, provider.InvalidParam(param, "is not base64")
		}
	}
	if _, err := wrap.ParseBlob(b); err != nil {
		var be *wrap.BlobError
		if errors.As(err, &be) {
			return nil, provider.InvalidParam(param, "is not a CiphertextBlob: it %s", be.Reason)
		}
		return nil, provider.InvalidParam(param, "is not a CiphertextBlob")
	}
	return b, nil
}

// parseTTL reads a lifetime: a Go duration (10m, 2h30m) or whole seconds.
func parseTTL(param, s string, def, max time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > int64(max/time.Second) {
			n = int64(max/time.Second) + 1
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, provider.InvalidParam(param, "must be a duration such as 10m or 2h, or a number of seconds, from 1s to %s", max)
	}
	if d < time.Second || d > max {
		return 0, provider.InvalidParam(param, "must be from 1s to %s, got %s", max, d)
	}
	return d, nil
}

// keyURI adds Ciphertext and MtsHlsUriToken to the key handler's URL.
func keyURI(param, base, ciphertext, token string) (string, error) {
	if len(base) > MaxKeyUriChars {
		return "", provider.InvalidParam(param, "is %d characters; at most %d", len(base), MaxKeyUriChars)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return "", provider.InvalidParam(param, "must be an absolute http or https URL without a fragment, such as http://127.0.0.1:8080%s", HLSKeyPath)
	}
	q := u.Query()
	if q.Has("Ciphertext") || q.Has("MtsHlsUriToken") {
		return "", provider.InvalidParam(param, "must not carry Ciphertext or MtsHlsUriToken: they are added")
	}
	q.Set("Ciphertext", ciphertext)
	q.Set("MtsHlsUriToken", token)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// mint issues a token for ciphertext valid until exp.
func (s *Service) mint(ctx context.Context, ciphertext []byte, exp time.Time) (string, error) {
	key, err := s.playKey(ctx)
	if err != nil {
		return "", err
	}
	t := &PlayToken{Version: PlayTokenVersion1, Expires: exp.Unix(), MAC: playMAC(key, exp.Unix(), ciphertext)}
	return t.String(), nil
}

// IssuePlayToken issues an MtsHlsUriToken that lets a player fetch the key
// of one Ciphertext from the key handler until it expires. The Ciphertext
// must be an HLS data key of this service (it is decrypted once to check).
func (s *Service) IssuePlayToken(ctx context.Context, req *IssuePlayTokenRequest) (*IssuePlayTokenResponse, error) {
	ct, err := parseCiphertext("Ciphertext", req.Ciphertext)
	if err != nil {
		return nil, err
	}
	ttl, err := parseTTL("Ttl", req.Ttl, min(DefaultPlayTokenTTL, s.maxTTL), s.maxTTL)
	if err != nil {
		return nil, err
	}
	if req.KeyUri != "" {
		if _, err := keyURI("KeyUri", req.KeyUri, "x", "x"); err != nil {
			return nil, err
		}
	}
	ctB64 := base64.StdEncoding.EncodeToString(ct)
	pt, err := s.decryptFor(ctx, ctB64, HLSEncryptionContext(), HLSKeyBytes)
	if err != nil {
		return nil, err
	}
	wrap.ZeroBytes(pt)
	exp := s.now().Add(ttl).Truncate(time.Second)
	tok, err := s.mint(ctx, ct, exp)
	if err != nil {
		return nil, err
	}
	resp := &IssuePlayTokenResponse{MtsHlsUriToken: tok, Expiration: exp.UTC().Format(time.RFC3339), RequestId: provider.NewRequestID()}
	if req.KeyUri != "" {
		if resp.KeyUri, err = keyURI("KeyUri", req.KeyUri, ctB64, tok); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// VerifyPlayToken checks that token unlocks ciphertext (a decoded
// CiphertextBlob) now. It returns nil or one of the ErrPlayToken errors
// (wrapped), or a provider error if the play-token key cannot be loaded.
// The MAC is compared in constant time.
func (s *Service) VerifyPlayToken(ctx context.Context, ciphertext []byte, token string) error {
	t, err := ParsePlayToken(token)
	if err != nil {
		return err
	}
	key, err := s.playKey(ctx)
	if err != nil {
		return err
	}
	want := playMAC(key, t.Expires, ciphertext)
	if !hmac.Equal(want[:], t.MAC[:]) {
		return ErrPlayTokenInvalid
	}
	if s.now().Unix() >= t.Expires {
		return fmt.Errorf("%w at %s", ErrPlayTokenExpired, time.Unix(t.Expires, 0).UTC().Format(time.RFC3339))
	}
	return nil
}
