// Package wrap owns every byte format that crosses the p11kms service
// boundary. It is pure Go (standard library crypto, gmsm and
// golang.org/x/crypto/cryptobyte) and never talks to a PKCS#11 token.
//
// What it owns:
//
//   - Public keys coming in: base64 DER SubjectPublicKeyInfo (Alibaba
//     PublicKeyBlob), PEM SubjectPublicKeyInfo or PKCS#1 (Tencent
//     EncryptionPublicKey), SM2 keys under id-ecPublicKey with the SM2 curve
//     OID or under the SM2 algorithm OID; each checked against a [KeySpec].
//   - The wrapping algorithms, in one closed static table keyed by the names
//     the cloud APIs use ([LookupAlgorithm]): RSAES_OAEP_SHA_1,
//     RSAES_OAEP_SHA_256, RSAES_PKCS1_V1_5, SM2PKE, SM2, SM2_C1C3C2_ASN1.
//   - The receiving side's decode steps for when a token cannot finish the
//     job: [DecodeOAEP] and [DecodePKCS1v15] on the output of a raw RSA
//     operation, and [SM2Ciphertext.FinishWithSharedX] on the x-coordinate
//     of the token's ECDH derivation; plus a fully software receiver
//     ([Algorithm.Decrypt]).
//   - The CiphertextBlob v1 format ([Blob]), the canonical EncryptionContext
//     encoding ([EncryptionContext.Canonical]) and the AES-GCM additional
//     data built from both ([AAD], the only place it is built).
//   - Key check values ([KCV]).
//
// Errors: every problem with a caller-supplied value is a *[ParamError] (or
// wraps one) naming a neutral [Field], so a front-end can map it to
// InvalidParameter naming its own parameter. Every
// decryption failure, whatever its cause, is [ErrDecryption], so that
// padding and MAC failures cannot be told apart. A malformed CiphertextBlob
// is a *[BlobError].
//
// Concurrency: the package holds no mutable state. Every function and
// method may be called from any number of goroutines; values returned
// ([Algorithm], [Blob], [SM2Ciphertext], [EncryptionContext]) are owned by
// the caller and are not safe for concurrent mutation.
package wrap
