package vod

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// Kinds of AppIdentification.
const (
	AppAndroid = "android" // SHA-1 fingerprint of the signing certificate
	AppIOS     = "ios"     // bundle id
	AppWindows = "windows" // app GUID
)

// NormalizeAppIdentification checks an AppIdentification and returns its
// canonical form and kind. Accepted, up to 128 characters:
//
//   - Android: the SHA-1 fingerprint of the app's signing certificate as
//     keytool prints it, 20 hex pairs separated by ':'
//     (AA:BB:...:FF); either case, canonically uppercase.
//   - iOS: the bundle id in reverse-DNS form (com.example.app): at least two
//     '.'-separated parts of ASCII letters, digits and '-', the first part
//     starting with a letter; case is kept.
//   - Windows: the app's serial as a GUID, 8-4-4-4-12 hex digits
//     (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), with or without braces, such as
//     an MSI ProductCode or a package identity GUID; canonically lowercase
//     without braces.
//
// A bad value is an InvalidParameter error naming AppIdentification and
// the rule it breaks.
func NormalizeAppIdentification(s string) (canonical, kind string, err error) {
	const param = "AppIdentification"
	if s == "" {
		return "", "", provider.InvalidParam(param, "is required: an Android certificate SHA-1 fingerprint, an iOS bundle id or a Windows app GUID")
	}
	if n := utf8.RuneCountInString(s); n > MaxAppIdentificationChars {
		return "", "", provider.InvalidParam(param, "is %d characters; at most %d", n, MaxAppIdentificationChars)
	}
	switch {
	case strings.Contains(s, ":"):
		if !isFingerprint(s) {
			return "", "", provider.InvalidParam(param, "an Android fingerprint must be the certificate's SHA-1 as 20 hex pairs separated by ':' (AA:BB:...:FF)")
		}
		return strings.ToUpper(s), AppAndroid, nil
	case strings.Contains(s, "."):
		if err := checkBundleID(s); err != "" {
			return "", "", provider.InvalidParam(param, "an iOS bundle id must be reverse-DNS (com.example.app): %s", err)
		}
		return s, AppIOS, nil
	default:
		g := s
		if strings.HasPrefix(g, "{") && strings.HasSuffix(g, "}") {
			g = g[1 : len(g)-1]
		}
		if !isGUID(g) {
			return "", "", provider.InvalidParam(param, "must be an Android certificate SHA-1 fingerprint (AA:BB:...:FF), an iOS bundle id (com.example.app) or a Windows app GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, braces optional)")
		}
		return strings.ToLower(g), AppWindows, nil
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isFingerprint: 20 hex pairs separated by ':'.
func isFingerprint(s string) bool {
	if len(s) != 20*3-1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i%3 == 2 {
			if s[i] != ':' {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isGUID: 8-4-4-4-12 hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// checkBundleID returns what is wrong with a bundle id, or "".
func checkBundleID(s string) string {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return "it needs at least two '.'-separated parts"
	}
	for i, p := range parts {
		if p == "" {
			return fmt.Sprintf("part %d is empty", i+1)
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Sprintf("part %d holds a character other than ASCII letters, digits and '-'", i+1)
			}
		}
	}
	if c := parts[0][0]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
		return "the first part must start with a letter"
	}
	return ""
}

// CheckAppDecryptKey checks the rules of an AppDecryptKey, as the ApsaraVideo
// VOD API states them: 16 to 32 letters and digits, with at least one
// uppercase letter, one lowercase letter and one digit (no spaces, no
// punctuation). The error names AppDecryptKey and the rule, never the value.
func CheckAppDecryptKey(s string) error {
	const param = "AppDecryptKey"
	if s == "" {
		return provider.InvalidParam(param, "is required: 16 to 32 characters with uppercase letters, lowercase letters and digits")
	}
	var upper, lower, digit bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		upper = upper || 'A' <= c && c <= 'Z'
		lower = lower || 'a' <= c && c <= 'z'
		digit = digit || '0' <= c && c <= '9'
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return provider.InvalidParam(param, "must be letters (A-Z, a-z) and digits (0-9) only: no spaces, punctuation or other characters")
		}
	}
	switch {
	case len(s) < MinAppDecryptKeyChars || len(s) > MaxAppDecryptKeyChars:
		return provider.InvalidParam(param, "must be %d to %d characters, got %d", MinAppDecryptKeyChars, MaxAppDecryptKeyChars, len(s))
	case !upper:
		return provider.InvalidParam(param, "must contain at least one uppercase letter (A-Z)")
	case !lower:
		return provider.InvalidParam(param, "must contain at least one lowercase letter (a-z)")
	case !digit:
		return provider.InvalidParam(param, "must contain at least one digit (0-9)")
	}
	return nil
}

// Key file (AppEncryptKey) format.
const (
	KeyFileFormat   = "p11kms-vod-download-key"
	KeyFileVersion1 = 1
	keyFileSaltLen  = 16
	keyFileNonceLen = 12
	maxKeyIdChars   = 128
	maxKeyFileBlob  = 512
)

// Errors of key files.
var (
	// ErrKeyFileMalformed: the AppEncryptKey is not a key file.
	ErrKeyFileMalformed = errors.New("vod: AppEncryptKey is not a p11kms download key file")
	// ErrKeyFileVersion: a key file of a version this code does not know.
	ErrKeyFileVersion = errors.New("vod: AppEncryptKey has an unsupported version")
	// ErrKeyMismatch is the one error for a wrong AppIdentification or a
	// wrong AppDecryptKey (or a key file altered after it was made).
	ErrKeyMismatch = errors.New("vod: the AppIdentification or AppDecryptKey does not match this AppEncryptKey")
)

// KeyFile is a parsed AppEncryptKey. On the wire it is the base64
// (standard, padded) of this JSON object, v1:
//
//	{"Format":"p11kms-vod-download-key","Version":1,
//	 "AppIdentification":"com.example.app",   canonical form
//	 "KeyId":"<media CMK id>",
//	 "Salt":"<base64, 16 bytes>",              random per file
//	 "Nonce":"<base64, 12 bytes>",             random per file
//	 "EncryptedKey":"<base64, 48 bytes>",      AES-256-GCM(K, Nonce, data key, AAD) ‖ tag
//	 "CiphertextBlob":"<base64>"}              the data key under the media CMK
//
// K = HKDF-SHA256(ikm = AppDecryptKey, salt = Salt,
// info = "p11kms/vod/download-key/v1" ‖ 0x00 ‖ AppIdentification), 32 bytes.
// AAD = "p11kms/vod/download-key" ‖ 0x00 ‖ 0x01 ‖ lp(AppIdentification) ‖
// lp(KeyId) ‖ lp(Salt) ‖ lp(CiphertextBlob), lp(x) = uvarint(len(x)) ‖ x.
// The CiphertextBlob's EncryptionContext is
// DownloadKeyEncryptionContext(AppIdentification), so the server side
// recovers the same data key with the token alone.
//
// ParseKeyFile also accepts the JSON itself. Unknown fields, a different
// Format, wrong lengths and trailing data are refused.
type KeyFile struct {
	Format            string
	Version           int
	AppIdentification string
	KeyId             string
	Salt              []byte
	Nonce             []byte
	EncryptedKey      []byte
	CiphertextBlob    []byte
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrKeyFileMalformed, fmt.Sprintf(format, args...))
}

// ParseKeyFile parses an AppEncryptKey (base64 of the JSON, or the JSON).
func ParseKeyFile(s string) (*KeyFile, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxAppEncryptKeyChars {
		return nil, malformed("%d characters; at most %d", len(s), MaxAppEncryptKeyChars)
	}
	raw := []byte(s)
	if !strings.HasPrefix(s, "{") {
		var err error
		if raw, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, malformed("not base64")
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var k KeyFile
	if err := dec.Decode(&k); err != nil {
		return nil, malformed("not the key-file JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("trailing data after the JSON object")
	}
	if k.Format != KeyFileFormat {
		return nil, malformed("Format is not %q", KeyFileFormat)
	}
	if k.Version != KeyFileVersion1 {
		return nil, fmt.Errorf("%w %d (supported: %d)", ErrKeyFileVersion, k.Version, KeyFileVersion1)
	}
	if c, _, err := NormalizeAppIdentification(k.AppIdentification); err != nil || c != k.AppIdentification {
		return nil, malformed("AppIdentification is not a canonical app identification")
	}
	if k.KeyId == "" || len(k.KeyId) > maxKeyIdChars || !printableASCII(k.KeyId) {
		return nil, malformed("KeyId must be 1 to %d printable ASCII characters", maxKeyIdChars)
	}
	switch {
	case len(k.Salt) != keyFileSaltLen:
		return nil, malformed("Salt is %d bytes, want %d", len(k.Salt), keyFileSaltLen)
	case len(k.Nonce) != keyFileNonceLen:
		return nil, malformed("Nonce is %d bytes, want %d", len(k.Nonce), keyFileNonceLen)
	case len(k.EncryptedKey) != DownloadKeyBytes+16:
		return nil, malformed("EncryptedKey is %d bytes, want %d", len(k.EncryptedKey), DownloadKeyBytes+16)
	case len(k.CiphertextBlob) > maxKeyFileBlob:
		return nil, malformed("CiphertextBlob is %d bytes; at most %d", len(k.CiphertextBlob), maxKeyFileBlob)
	}
	if _, err := wrap.ParseBlob(k.CiphertextBlob); err != nil {
		return nil, malformed("CiphertextBlob: %v", err)
	}
	return &k, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Marshal encodes the key file as an AppEncryptKey (base64 of the JSON).
func (k *KeyFile) Marshal() string {
	b, err := json.Marshal(k)
	if err != nil {
		panic("vod: marshalling a key file: " + err.Error()) // plain strings and bytes: cannot fail
	}
	return base64.StdEncoding.EncodeToString(b)
}

// aad is the additional data of EncryptedKey.
func (k *KeyFile) aad() []byte {
	b := append([]byte("p11kms/vod/download-key"), 0, KeyFileVersion1)
	for _, f := range [][]byte{[]byte(k.AppIdentification), []byte(k.KeyId), k.Salt, k.CiphertextBlob} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// appKey derives the key-file key from the app's decrypt key.
func (k *KeyFile) appKey(appDecryptKey string) cipher.AEAD {
	kk, err := hkdf.Key(sha256.New, []byte(appDecryptKey), k.Salt, "p11kms/vod/download-key/v1\x00"+k.AppIdentification, 32)
	if err != nil {
		panic("vod: hkdf: " + err.Error()) // 32 bytes of SHA-256 HKDF cannot fail
	}
	defer wrap.ZeroBytes(kk)
	block, _ := aes.NewCipher(kk)
	aead, _ := cipher.NewGCM(block)
	return aead
}

// sealKeyFile makes a key file holding dk for appID (canonical), under
// appDecryptKey; blob is dk under the media CMK key keyID.
func sealKeyFile(appID, keyID string, blob, dk []byte, appDecryptKey string) *KeyFile {
	k := &KeyFile{Format: KeyFileFormat, Version: KeyFileVersion1, AppIdentification: appID, KeyId: keyID,
		Salt: randomBytes(keyFileSaltLen), Nonce: randomBytes(keyFileNonceLen), CiphertextBlob: blob}
	k.EncryptedKey = k.appKey(appDecryptKey).Seal(nil, k.Nonce, dk, k.aad())
	return k
}

// Open recovers the data key on the app side, in pure Go. A wrong
// AppIdentification or AppDecryptKey (or an altered key file) is
// ErrKeyMismatch, whichever it is.
func (k *KeyFile) Open(appIdentification, appDecryptKey string) (*DataKey, error) {
	appID, _, err := NormalizeAppIdentification(appIdentification)
	if err != nil {
		return nil, ErrKeyMismatch
	}
	// The stored id is part of both the key derivation and the AAD; using
	// the caller's makes a wrong one fail exactly like a wrong decrypt key.
	kc := *k
	kc.AppIdentification = appID
	dk, err := kc.appKey(appDecryptKey).Open(nil, k.Nonce, k.EncryptedKey, kc.aad())
	if err != nil {
		return nil, ErrKeyMismatch
	}
	return &DataKey{b: dk}, nil
}

// DataKey is a secure-download data key (32 bytes, AES-256). Its bytes are
// reachable only through Bytes, so every export is greppable.
type DataKey struct{ b []byte }

// NewDataKey copies a 32-byte key.
func NewDataKey(b []byte) (*DataKey, error) {
	if len(b) != DownloadKeyBytes {
		return nil, fmt.Errorf("vod: a download data key is %d bytes, got %d", DownloadKeyBytes, len(b))
	}
	return &DataKey{b: bytes.Clone(b)}, nil
}

// Bytes returns the plaintext key (not a copy).
func (k *DataKey) Bytes() []byte { return k.b }

// KeyCheckValue returns the key's KCV (hex).
func (k *DataKey) KeyCheckValue() string {
	kcv, _ := wrap.KCV(k.b)
	return kcv
}

// Destroy zeroes the key.
func (k *DataKey) Destroy() { wrap.ZeroBytes(k.b) }

// GenerateDownloadSecretKey makes a fresh 32-byte data key under the media
// CMK and returns it as an AppEncryptKey bound to the app: readable with
// the app's AppIdentification and AppDecryptKey (OpenDownloadKey), and by
// this service through the token (RecoverDownloadKey).
func (s *Service) GenerateDownloadSecretKey(ctx context.Context, req *GenerateDownloadSecretKeyRequest) (*GenerateDownloadSecretKeyResponse, error) {
	appID, _, err := NormalizeAppIdentification(req.AppIdentification)
	if err != nil {
		return nil, err
	}
	if err := CheckAppDecryptKey(req.AppDecryptKey); err != nil {
		return nil, err
	}
	r, err := s.generate(ctx, DownloadKeyBytes, DownloadKeyEncryptionContext(appID))
	if err != nil {
		return nil, err
	}
	dk, err := base64.StdEncoding.DecodeString(r.Plaintext)
	defer wrap.ZeroBytes(dk)
	blob, err2 := base64.StdEncoding.DecodeString(r.CiphertextBlob)
	if err != nil || err2 != nil || len(dk) != DownloadKeyBytes {
		return nil, provider.Internal("generating the download key", errors.New("bad data key"))
	}
	kf := sealKeyFile(appID, r.KeyId, blob, dk, req.AppDecryptKey)
	return &GenerateDownloadSecretKeyResponse{AppEncryptKey: kf.Marshal(), RequestId: provider.NewRequestID()}, nil
}

// parseKeyFileParam parses an AppEncryptKey parameter as an API error.
func parseKeyFileParam(s string) (*KeyFile, error) {
	kf, err := ParseKeyFile(s)
	if err != nil {
		e := provider.InvalidParam("AppEncryptKey", "%s", strings.TrimPrefix(err.Error(), "vod: AppEncryptKey "))
		e.Err = err
		return nil, e
	}
	return kf, nil
}

// mismatch is ErrKeyMismatch as an API error.
func mismatch() error {
	e := provider.NewError(provider.CodeInvalidParameter, "AppIdentification or AppDecryptKey: does not match the AppEncryptKey")
	e.Err = ErrKeyMismatch
	return e
}

// OpenDownloadKey recovers the data key of an AppEncryptKey on the app side,
// in pure Go with no token. A wrong AppIdentification or AppDecryptKey is one
// InvalidParameter error wrapping ErrKeyMismatch.
func OpenDownloadKey(req *OpenDownloadKeyRequest) (*OpenDownloadKeyResponse, error) {
	dk, kf, err := openLocal(req.AppEncryptKey, req.AppIdentification, req.AppDecryptKey)
	if err != nil {
		return nil, err
	}
	defer dk.Destroy()
	return &OpenDownloadKeyResponse{AppIdentification: kf.AppIdentification, KeyId: kf.KeyId,
		DataKey: base64.StdEncoding.EncodeToString(dk.Bytes()), KeyCheckValue: dk.KeyCheckValue(), RequestId: provider.NewRequestID()}, nil
}

func openLocal(appEncryptKey, appID, appDecryptKey string) (*DataKey, *KeyFile, error) {
	kf, err := parseKeyFileParam(appEncryptKey)
	if err != nil {
		return nil, nil, err
	}
	if appID == "" {
		return nil, nil, provider.InvalidParam("AppIdentification", "is required with AppDecryptKey")
	}
	if appDecryptKey == "" {
		return nil, nil, provider.InvalidParam("AppDecryptKey", "is required")
	}
	dk, err := kf.Open(appID, appDecryptKey)
	if err != nil {
		return nil, nil, mismatch()
	}
	return dk, kf, nil
}

// RecoverDownloadKey recovers the data key of an AppEncryptKey on the
// server side: the KMS decrypts its CiphertextBlob (no AppDecryptKey
// needed).
func (s *Service) RecoverDownloadKey(ctx context.Context, appEncryptKey string) (*DataKey, *KeyFile, error) {
	kf, err := parseKeyFileParam(appEncryptKey)
	if err != nil {
		return nil, nil, err
	}
	b, err := s.decryptFor(ctx, base64.StdEncoding.EncodeToString(kf.CiphertextBlob), DownloadKeyEncryptionContext(kf.AppIdentification), DownloadKeyBytes)
	if err != nil {
		return nil, nil, err
	}
	return &DataKey{b: b}, kf, nil
}
