// Package aliyun is the Alibaba Cloud KMS wire front-end (API version
// 2016-01-20): an http.Handler that lets the official Alibaba Cloud Go SDKs
// (github.com/alibabacloud-go/kms-20160120/v3 over darabonba-openapi, and the
// legacy github.com/aliyun/alibaba-cloud-sdk-go/services/kms), unchanged,
// call a *provider.Service.
//
// # What it owns
//
//   - Authentication of every request with the signature the SDK sent:
//     ACS3-HMAC-SHA256 and ACS4-HMAC-SHA256 (Authorization header) and the
//     RPC HMAC-SHA1 Signature parameter, each checked in constant time
//     against the secret of the access key it names; the timestamp must lie
//     within ±15 minutes of Config.Now and the nonce must not have been seen
//     in the last 30 minutes.
//   - Turning the flat request parameters (query string, and a form body for
//     the legacy SDK) into the provider's request structs: strict types,
//     duplicate parameters refused, Alibaba parameters p11kms does not model
//     tolerated or validated, anything else refused with InvalidParameter.
//   - Its table (wire.Actions), verifier and error map, run by the one
//     pipeline (wire.Serve): per-access-key policy, rate limit (Config.Limiter).
//   - Responses as the SDKs parse them: HTTP 200 with the provider's response
//     as a flat JSON object, or HTTP 4xx/5xx with
//     {"RequestId","HostId","Code","Message"}. Every response carries a
//     RequestId (also in the x-acs-request-id header).
//   - One wire.Record per request for Config.Observer (audit log, metrics).
//
// Routing between the Alibaba and Tencent APIs, TLS, the audit log itself
// and metrics belong to provider/server.
//
// Errors never hold parameter values, plaintext, keys or secrets.
//
// # Concurrency
//
// The handler returned by New is safe for concurrent use by any number of
// goroutines. Its only shared state is the nonce memory, a wire.ReplayCache
// behind its own mutex; no lock is held while the provider or the token
// works. Config.Now, Config.Observer, Config.Limiter and Config.Keys are
// called from many goroutines at once and must be safe for that; Observer is
// called synchronously, once per request, after the response is written.
// Nonces are remembered per handler: several p11kms processes behind one
// load balancer each keep their own memory, so a request replayed to a
// different process within the ±15 minute window is not detected there.
package aliyun
