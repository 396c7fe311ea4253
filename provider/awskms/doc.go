// Package awskms is the AWS KMS wire dialect: the JSON 1.1 protocol the
// AWS SDKs, the AWS CLI and the AWS Encryption SDK speak (POST /,
// Content-Type application/x-amz-json-1.1, X-Amz-Target
// TrentService.<Operation>), signed with SigV4 (provider/sigv4, signing
// name kms, X-Amz-Target signed), answered with AWS's shapes and errors
// ({"__type","message"} and X-Amzn-ErrorType).
//
// It is a table (ops.go: operation → request shape, what it touches for
// authorization, the core call), a verifier (auth.go) and an error map
// (errors.go) over the shared pipeline of provider/wire; it holds no
// crypto and no state but the replay memory of signatures. Key
// references are AWS's: key ids, arn:aws:kms:<region>:<account>:key/<id>,
// alias/<name> and alias ARNs (refs.go), translated to the core's before
// authorization, so policies see key ids and alias names as for every
// dialect. The handler is safe for concurrent use.
package awskms
