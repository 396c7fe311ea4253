// Package provider is the KMS: customer master keys (CMKs) with versions,
// states and aliases, and every data-key operation of the Alibaba Cloud KMS
// API (with Tencent's GenerateDataKey-with-public-key variant), over a
// PKCS#11 token ([hsm]) and the pure-Go formats of [wrap].
//
// Request and response structs use the Alibaba Cloud KMS field names
// (KeyId, KeyVersionId, CiphertextBlob, ...), so wire front-ends only
// translate. Errors are *[Error] values carrying the Alibaba code and HTTP
// status; each wire dialect maps them to its own codes.
//
// # State
//
// The token is the only store. A CMK version is a sensitive, non-extractable
// AES-256 secret key (CKA_ID = the version UUID's 16 bytes, CKA_LABEL =
// p11kms/<KeyId>/<KeyVersionId>). A key's metadata is a CKO_DATA object
// (application "p11kms", label = KeyId) holding JSON; an alias is a CKO_DATA
// object (application "p11kms-alias", label = the alias name) holding the
// KeyId it points to. Metadata and aliases change through hsm's
// generation-checked replace, re-read and re-applied on a conflict, so two
// processes on one token never lose each other's updates.
//
// # Concurrency
//
// A [Service] is safe for concurrent use, and several Services (in one or
// many processes) may share one token.
package provider
