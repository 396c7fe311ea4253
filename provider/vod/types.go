package vod

import (
	"time"

	"github.com/p11kms/p11kms/wrap"
)

// Names and limits.
const (
	// MediaKeyAlias is the alias of the media CMK, created on first use.
	MediaKeyAlias = "alias/p11kms-vod"
	// HLSKeyPath is the route of the HLS key handler; HLSKeyPattern is the
	// http.ServeMux pattern to mount [Service.KeyHandler] under.
	HLSKeyPath    = "/hls/key"
	HLSKeyPattern = "GET " + HLSKeyPath
	// TokenKeyFileName is the conventional name, in the p11kms home, of the
	// file holding the play-token secret's CiphertextBlob.
	TokenKeyFileName = "vod-token-key.blob"

	// HLSKeyBytes is the size of an HLS AES-128 data key.
	HLSKeyBytes = 16
	// DownloadKeyBytes is the size of a secure-download data key (AES-256).
	DownloadKeyBytes = 32
	// TokenSecretBytes is the size of the play-token secret.
	TokenSecretBytes = 32

	// DefaultPlayTokenTTL is IssuePlayToken's default lifetime;
	// DefaultPackageTTL is PackageHls's (its token is baked into the
	// playlist); DefaultMaxPlayTokenTTL bounds both unless Config says
	// otherwise.
	DefaultPlayTokenTTL    = 10 * time.Minute
	DefaultPackageTTL      = 24 * time.Hour
	DefaultMaxPlayTokenTTL = 7 * 24 * time.Hour

	MinAppDecryptKeyChars     = 16
	MaxAppDecryptKeyChars     = 32
	MaxAppIdentificationChars = 128
	// MaxAppEncryptKeyChars bounds an AppEncryptKey (base64 characters).
	MaxAppEncryptKeyChars = 8192
	// MaxCiphertextChars bounds a Ciphertext parameter (base64 characters).
	MaxCiphertextChars = 1024
	// MaxKeyUriChars bounds PackageHls's and IssuePlayToken's KeyUri.
	MaxKeyUriChars = 2048
)

// contextPurpose is the EncryptionContext key that separates the media CMK's
// blobs by purpose: a blob made for one purpose never decrypts as another.
const contextPurpose = "p11kms-vod"

// HLSEncryptionContext is the EncryptionContext of a GenerateKMSDataKey
// CiphertextBlob; pass it to the KMS's Decrypt to open one directly.
func HLSEncryptionContext() wrap.EncryptionContext {
	return wrap.EncryptionContext{contextPurpose: "hls-key"}
}

// TokenKeyEncryptionContext is the EncryptionContext of the play-token
// secret's CiphertextBlob.
func TokenKeyEncryptionContext() wrap.EncryptionContext {
	return wrap.EncryptionContext{contextPurpose: "play-token-key"}
}

// DownloadKeyEncryptionContext is the EncryptionContext of the
// CiphertextBlob inside an AppEncryptKey made for appID (normalised).
func DownloadKeyEncryptionContext(appID string) wrap.EncryptionContext {
	return wrap.EncryptionContext{contextPurpose: "download-key", "AppIdentification": appID}
}

// GenerateKMSDataKeyRequest has no parameters: the key is made under the
// service's media CMK.
type GenerateKMSDataKeyRequest struct{}

// GenerateKMSDataKeyResponse is an HLS AES-128 data key: Plaintext (base64,
// 16 bytes) and the same key under the media CMK (CiphertextBlob, base64;
// EncryptionContext [HLSEncryptionContext]).
type GenerateKMSDataKeyResponse struct {
	KeyId          string
	CiphertextBlob string
	Plaintext      string
	RequestId      string
}

// IssuePlayTokenRequest asks for an MtsHlsUriToken for one Ciphertext.
type IssuePlayTokenRequest struct {
	Ciphertext string `cli:"required,file" help:"CiphertextBlob from GenerateKMSDataKey"`
	Ttl        string `help:"lifetime: a duration (10m, 2h) or seconds, 1s to 168h (default 10m)"`
	KeyUri     string `help:"URL of the key handler (e.g. http://127.0.0.1:8080/hls/key): the response then carries the full key URI"`
}

// IssuePlayTokenResponse carries the token, its expiry (RFC 3339, UTC) and,
// when KeyUri was given, the key URI with Ciphertext and MtsHlsUriToken.
type IssuePlayTokenResponse struct {
	MtsHlsUriToken string
	Expiration     string
	KeyUri         string `json:",omitempty"`
	RequestId      string
}

// PackageHlsRequest packages a media file as encrypted HLS (AES-128). A nil
// HlsTime is absent (2 seconds); a given 0 is refused.
type PackageHlsRequest struct {
	Input    string `cli:"required" help:"source media file (anything ffmpeg reads)"`
	Output   string `cli:"required" help:"output directory (created if missing); the playlist is <Output>/index.m3u8"`
	KeyUri   string `cli:"required" help:"URL of the HLS key handler, e.g. http://127.0.0.1:8080/hls/key"`
	Ttl      string `help:"lifetime of the play token baked into the playlist (default 24h, at most 168h)"`
	HlsTime  *int   `help:"segment duration in seconds, 1 to 60 (default 2)"`
	Reencode bool   `help:"re-encode to H.264/AAC instead of copying the streams"`
	Force    bool   `help:"overwrite an existing playlist and segments in Output"`
}

// PackageHlsResponse names the playlist and the key URI written in it.
type PackageHlsResponse struct {
	Playlist       string
	KeyUri         string
	KeyId          string
	CiphertextBlob string
	Expiration     string
	Segments       int
	RequestId      string
}

// GenerateDownloadSecretKeyRequest asks for an AppEncryptKey bound to an app.
type GenerateDownloadSecretKeyRequest struct {
	AppIdentification string `cli:"required" help:"Android SHA-1 signing-certificate fingerprint (AA:BB:...:FF, 20 pairs), iOS bundle id (com.example.app) or Windows app GUID (8-4-4-4-12 hex, braces optional); up to 128 characters"`
	AppDecryptKey     string `cli:"required,file" help:"16 to 32 letters (A-Z, a-z) and digits (0-9), with at least one uppercase letter, one lowercase letter and one digit"`
}

// GenerateDownloadSecretKeyResponse is the key file (base64) for the app.
type GenerateDownloadSecretKeyResponse struct {
	AppEncryptKey string
	RequestId     string
}

// OpenDownloadKeyRequest opens an AppEncryptKey on the app side.
type OpenDownloadKeyRequest struct {
	AppEncryptKey     string `cli:"required,file" help:"AppEncryptKey from GenerateDownloadSecretKey"`
	AppIdentification string `cli:"required" help:"the app's identification, as given to GenerateDownloadSecretKey"`
	AppDecryptKey     string `cli:"required,file" help:"the app's decrypt key, as given to GenerateDownloadSecretKey"`
}

// OpenDownloadKeyResponse is the recovered data key (base64) and its KCV.
type OpenDownloadKeyResponse struct {
	AppIdentification string
	KeyId             string
	DataKey           string
	KeyCheckValue     string
	RequestId         string
}

// FileRequest encrypts or decrypts a media file with the data key of an
// AppEncryptKey. With AppDecryptKey (and AppIdentification) the key is
// opened here, in pure Go; without, the KMS decrypts the key file's
// CiphertextBlob (the server side).
type FileRequest struct {
	AppEncryptKey     string `cli:"required,file" help:"AppEncryptKey from GenerateDownloadSecretKey"`
	AppIdentification string `help:"the app's identification (only with AppDecryptKey)"`
	AppDecryptKey     string `cli:"file" help:"open the key here without the token (app side); without it the KMS recovers the key (server side)"`
	Input             string `cli:"required" help:"file to read"`
	Output            string `cli:"required" help:"file to write; never overwritten unless Force"`
	Force             bool   `help:"replace an existing Output"`
}

// FileResponse names the file written.
type FileResponse struct {
	Output    string
	Bytes     int64 // bytes written
	RequestId string
}
