// Package xks serves the AWS KMS External Key Store (XKS) Proxy API v1
// (docs/XKS.md): AWS KMS calls it to encrypt and decrypt with AES-256 keys
// that never leave the PKCS#11 token. All four operations are POSTs of
// JSON under [/prefix]/kms/xks/v1: keys/{externalKeyId}/metadata,
// keys/{externalKeyId}/encrypt, keys/{externalKeyId}/decrypt and health.
//
// A request runs through the pipeline of provider/wire like every other
// dialect: one wire.Record with its RequestId, the SigV4 signature
// (service kms-xks-proxy), replay memory, the rate limit, then the
// request's requestMetadata against the key's secondary-authorization
// policy (principals and KMS operations), then the token. Errors are
// {"errorName","errorMessage"} with the spec's HTTP statuses. The replay
// memory and the rate limit are the node's (Config.Replay and
// Config.Limiter: internal/state, in process or shared on Redis).
//
// The configuration file (File) keeps the SigV4 secrets sealed under the
// token's key (LoadSealedFile opens them, sealing plaintext ones in the
// file first; UpdateFile changes the file, sealed, atomically).
package xks
