// Package tencent is the Tencent Cloud KMS wire API (version 2019-01-18)
// in front of a *provider.Service, so that the official Tencent Cloud Go
// SDK (tencentcloud-sdk-go kms/v20190118), unchanged, works against a
// PKCS#11-backed p11kms.
//
// What it owns:
//
//   - Authentication: TC3-HMAC-SHA256 for POST (JSON body, hashed) and GET
//     (query signed as sent), and the legacy v1 HmacSHA1/HmacSHA256
//     (Signature, Nonce, Timestamp, SecretId, SignatureMethod parameters; GET
//     query or POST form). Secrets come from wire.AccessKeys; MACs are
//     compared in constant time. A timestamp more than TimestampWindow from
//     the server clock is AuthFailure.SignatureExpire; a v1 Nonce seen before
//     for the same SecretId is refused (AuthFailure.SignatureExpire, "replay").
//     TC3 does not sign X-TC-Action, X-TC-Region or X-TC-Version, so each TC3
//     signature is remembered for the window with the targets it was used
//     for and its first use (reuse.go): a read may repeat (honest identical
//     calls in one second carry identical signatures); a state-changing
//     action is performed at most once per signature; a new target is
//     accepted only within RetargetGrace of the first use (always refused
//     after twice it) and, for a state
//     change, over the same connection (an honest SDK client's DescribeKey
//     then DisableKey on one KeyId in one second); otherwise the request is
//     AuthFailure.SignatureFailure.
//   - Decoding: parameters by their exact Tencent names, strictly — unknown
//     names are UnknownParameter, wrong types (a number as a string in JSON)
//     InvalidParameter; flattened names (Tags.0.TagKey) for GET and v1.
//   - Translation of each action to the provider and back, with Tencent's
//     shapes and rules: a Tencent alias "name" is the provider alias
//     "alias/name"; times are Unix seconds; PendingDeletion is PendingDelete;
//     EncryptionContext is a JSON string of at most 1024 characters;
//     ScheduleKeyDeletion needs a Disabled key and 7–30 days, and
//     CancelKeyDeletion leaves the key Disabled; Decrypt with
//     EncryptionPublicKey returns the plaintext encrypted under that key.
//   - The response envelope: every answer, success or error, is HTTP 200
//     {"Response":{...,"RequestId"}}, errors {"Response":{"Error":{"Code",
//     "Message"},"RequestId"}}, codes from coreCode (errors.go) or this
//     package's Code constants. Messages never hold plaintext, keys or secrets.
//   - Access policy (the pipeline, wire.Serve, with Tencent action names: a refusal is
//     UnauthorizedOperation), the per-SecretId Limiter (RequestLimitExceeded),
//     the request size limit (RequestSizeLimitExceeded), and one wire.Record
//     per request for the Observer.
//
// Routing (which requests reach this handler), TLS, audit storage and
// metrics belong to the server.
//
// # Concurrency
//
// The handler returned by New is safe for concurrent use by any number of
// goroutines: it keeps no per-request state outside the request, and its
// replay memories (wire.ReplayCache) lock internally. The provider.Service,
// wire.AccessKeys, Observer and Limiter it is given must themselves be safe
// for concurrent use; Observe is called synchronously, once per request,
// after the response is written.
package tencent
