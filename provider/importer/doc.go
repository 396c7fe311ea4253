// Package importer is the receiving side of p11kms's data-key export: it
// turns an ExportedDataKey (a data key that another KMS wrapped under this
// token's public key with GenerateAndExportDataKey, or Tencent's
// GenerateDataKey with EncryptionPublicKey) into a sensitive,
// non-extractable secret key inside this token, and reports its key check
// value.
//
// # What it owns
//
//   - Wrapping keys: RSA 2048/3072/4096 or SM2-curve key pairs generated in
//     the token ([Service.CreateWrappingKey]); the private half is sensitive
//     and never extractable, the public half is handed out as a PublicKeyBlob
//     (base64 DER SubjectPublicKeyInfo) and PEM for the exporting side.
//     [Service.GetWrappingPublicKey], [Service.ListWrappingKeys] and
//     [Service.DeleteWrappingKey] manage them. A wrapping key is the key pair
//     whose CKA_LABEL is its KeyLabel.
//   - The import itself ([Service.ImportDataKey]), along one of three paths,
//     named in the result's Path:
//     [PathTokenUnwrap] (RSAES_OAEP_SHA_1, RSAES_PKCS1_V1_5, and
//     RSAES_OAEP_SHA_256 where the token offers it): C_UnwrapKey with the
//     token's private key, so the plaintext key never enters host memory;
//     [PathHostOAEP] (RSAES-OAEP on a token that refuses the hash, e.g.
//     SHA-256 on SoftHSM2 2.6.1, only when the caller sets
//     AllowHostDecode): raw RSA (CKM_RSA_X_509) in the token and a
//     constant-time OAEP decode here;
//     [PathHostSM2] (SM2PKE, SM2, SM2_C1C3C2_ASN1): CKM_ECDH1_DERIVE in the
//     token gives x2 = x([d]C1) and the SM2 decryption is finished here.
//     On both host paths the plaintext key is in this process's memory
//     between decoding and C_CreateObject, and zeroed after.
//   - Use of an imported AES key: AES-GCM in the token ([Service.Encrypt],
//     [Service.Decrypt]) with a fresh 12-byte IV from the token RNG.
//
// # Guarantees
//
// Every request is validated before any token call; a bad value is an
// InvalidParameter *provider.Error naming the parameter and what it
// accepts. Every failure to decrypt an ExportedDataKey — tampered, truncated,
// made for another wrapping key or another algorithm, or decrypting to a
// key of the wrong length — is the same InvalidCiphertext error with the
// same message and the same cause, and leaves nothing in the token. A key is
// verified in the token (its AES KCV computed there) before any lookup of
// its label can use it: until then it is a pending key, whose CKA_ID marks
// it, and lookups never use one. A mismatching ExpectedKeyCheckValue leaves
// nothing behind either.
//
// A persistent import killed at any point (SIGKILL, power loss) leaves its
// label with the key it had or the new one, never both, and no key
// material without a label; the label's next import, DeleteKey or lookup
// removes whatever else the kill left (a pending key, the replaced key).
// How, on a token whose only atomic change is an object's removal:
// replace.go.
//
// RSAES_PKCS1_V1_5 is legacy (see wrap.AlgRSAPKCS1v15): the token's padding
// check and the KCV check that follows take different times, so a service
// that imports PKCS#1 v1.5 keys for remote callers must rate-limit them.
//
// GENERIC_SECRET keys imported on the token-unwrap path cannot be checked
// on SoftHSM2 2.6.1: it reports CKA_VALUE_LEN 0 and no CKA_CHECK_VALUE for an
// unwrapped key, so neither the length nor the KCV is known (KeyCheckValue
// is then empty, and ExpectedKeyCheckValue is refused as UnsupportedOperation).
// Tokens that report CKA_VALUE_LEN or CKA_CHECK_VALUE get both checked.
// On the host paths both are always checked; a generic secret's KCV is the
// first 3 bytes of SHA-1(key) (PKCS#11 3.0 CKA_CHECK_VALUE).
//
// # Labels
//
// KeyLabel is the CKA_LABEL of the key (or key pair) in the token and is
// unique there: an operation that would create a second object with a label
// some object already carries is refused with Rejected.Conflict, unless
// ImportDataKey's Replace is set and the existing object is an imported
// secret key (the old key is destroyed only after the new one exists and is
// verified). Labels the KMS reserves (provider.IsReservedLabel: "p11kms/"
// for CMK versions, key pairs and service keys, "p11kms-import" for BYOK
// wrapping keys and the import-token key) are refused, and such objects
// are not listed by ListWrappingKeys. Imports and deletions of one label take turns across the
// processes of a host (an flock on a lock file in the system temp
// directory: every process on a token must share TMPDIR, as for the hsm
// package's object lock); a lookup that meets an import in progress waits
// for it.
//
// An Ephemeral (session) key's label is unique among the session keys this
// Service imported, not across the token: checking a token for a label is a
// C_FindObjects over every object in it (linear: ~30 ms with 10,000
// objects on SoftHSM2), too slow for use-once keys, and no other process
// can see a session key anyway. While it exists, this Service's lookups by
// that label (Encrypt, Decrypt, DeleteKey) use the session key, even if a
// token key carries the same label. [Service.DeleteKey] frees a use-once
// key at once.
//
// # Concurrency contract
//
// A [Service] is safe for concurrent use by many goroutines, and several
// Services, in one or many processes, may share a token. It caches object
// handles (wrapping keys and imported keys, by label) and drops an entry
// when the token says the handle is no longer valid, then looks the label up
// again once. Operations on one label are serialised within a Service; no
// lock is held across token calls for other labels. Ephemeral keys are
// session objects: they live until DeleteKey (or Replace) destroys them or
// the process closes the token, and are invisible to other processes.
package importer
