// Package vod is p11kms's ApsaraVideo VOD media-key operations, built on the
// KMS (provider): HLS encryption keys with their key-delivery endpoint, and
// key files for secure download.
//
// # What it owns
//
//   - The media CMK: an ordinary CMK of the KMS under the alias
//     alias/p11kms-vod ([MediaKeyAlias]), created on first use. Creation is
//     race-safe across processes: the loser of a CreateAlias race
//     (Forbidden.AliasExists) schedules its own new key for deletion and
//     uses the winner's. Every blob it makes carries an EncryptionContext
//     naming its purpose ({"p11kms-vod": "hls-key" | "play-token-key" |
//     "download-key", ...}), so a blob made for one purpose never decrypts
//     as another (the key handler cannot be used to decrypt the
//     play-token secret or a download key).
//   - [Service.GenerateKMSDataKey]: a 16-byte AES-128 data key for HLS
//     (KeyId, CiphertextBlob, Plaintext, RequestId; EncryptionContext
//     [HLSEncryptionContext]).
//   - Play tokens ([PlayToken], [Service.IssuePlayToken],
//     [Service.VerifyPlayToken]): an expiring HMAC-SHA256 bound to one
//     Ciphertext, passed as MtsHlsUriToken. The HMAC key is derived from a
//     32-byte secret that exists outside the token only as a CiphertextBlob
//     under the media CMK (Config.TokenKeyFile, conventionally
//     $P11KMS_HOME/vod-token-key.blob, or Config.TokenKeyBlob) and is
//     decrypted by the token on first use (or at start-up, [Service.Init]).
//   - The key-delivery handler ([Service.KeyHandler], route
//     GET /hls/key?Ciphertext=...&MtsHlsUriToken=...): the 16 key bytes
//     for a valid token, 403 for a missing, forged, expired or
//     other-Ciphertext token, 400 for a bad Ciphertext.
//   - [Service.PackageHls]: ffmpeg packaging of a media file as AES-128 HLS
//     whose playlist's key URI points at the handler.
//   - Secure download: [Service.GenerateDownloadSecretKey] validates
//     AppIdentification ([NormalizeAppIdentification]) and AppDecryptKey
//     ([CheckAppDecryptKey]) and returns an AppEncryptKey ([KeyFile]): a
//     32-byte data key sealed with AES-256-GCM under HKDF-SHA256(AppDecryptKey)
//     for the app, and under the media CMK for the server.
//     [OpenDownloadKey] and [KeyFile.Open] recover it on the app side in pure
//     Go; [Service.RecoverDownloadKey] on the server side through the token.
//   - The encrypted media file format (see [StreamMagic]): chunked
//     AES-256-GCM with a per-file key, for files larger than memory
//     ([DataKey.EncryptStream], [DataKey.DecryptStream],
//     [DataKey.EncryptFile], [DataKey.DecryptFile], and the request forms
//     [EncryptFile], [DecryptFile], [Service.EncryptFile],
//     [Service.DecryptFile]). Output files are written to a temporary file
//     and renamed into place, never overwritten without Force, and not left
//     behind on any error.
//
// # Security notes
//
// The HLS key leaves the service in plaintext by design (HLS AES-128:
// players fetch it): the play token limits who gets it and until when, and
// the handler answers with Cache-Control: no-store. A token baked into a
// playlist is a bearer credential for that one key until it expires.
// AppDecryptKey is a password-like secret of 16 to 32 characters; HKDF does
// not slow down guessing, so an AppEncryptKey must be kept as confidential
// as the media it protects.
//
// # Errors
//
// Request methods return *provider.Error values (InvalidParameter naming the
// parameter and the rule, InvalidCiphertext, the KMS's own codes), wrapping
// this package's sentinel errors where there is one: [ErrKeyMismatch] for a
// wrong AppIdentification or AppDecryptKey, [ErrStreamDamaged] and
// [ErrStreamKey] for encrypted files, [ErrOutputExists], the ErrPlayToken
// errors from VerifyPlayToken.
//
// # Concurrency
//
// A [Service] is safe for concurrent use, and several Services in one or
// many processes may share a token (and a TokenKeyFile). No Go lock is held
// across a token call; concurrent first uses share one media-key creation
// and one play-token key load. A [DataKey] may be used by several
// goroutines at once but Destroy must come after the last use.
package vod
