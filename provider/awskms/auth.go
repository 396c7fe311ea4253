package awskms

import (
	"cmp"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/sigv4"
	"github.com/p11kms/p11kms/provider/wire"
)

// SigningName is the SigV4 service name of AWS KMS.
const SigningName = "kms"

// defaultSkew is how far X-Amz-Date may be from the clock without
// --clock-skew: AWS's own ±5 minutes.
const defaultSkew = 5 * time.Minute

// replayWindow is how long a signature is remembered: the X-Amz-Date
// window both ways (a signature older than skew is refused by its date).
// It follows --clock-skew as the other dialects' windows do, so it is
// never longer than the window the node's replay memory is sized for
// (server.ReplayWindow); with a fixed 11 minutes, `serve --clock-skew 2s`
// failed every AWS request as "replay memory unavailable".
func replayWindow(skew time.Duration) time.Duration { return 2 * skew }

// verifier checks SigV4 signatures against the access keys: X-Amz-Target
// must be signed (so an operation cannot be swapped under a signature)
// and the body too (UNSIGNED-PAYLOAD is refused).
type verifier struct {
	v    *sigv4.Verifier
	keys *wire.AccessKeys
}

// authResult is an authenticated request.
type authResult struct {
	key       wire.AccessKey
	signature []byte
}

func newVerifier(keys *wire.AccessKeys, now func() time.Time, skew time.Duration) *verifier {
	v, err := sigv4.New(sigv4.Config{
		Service: SigningName, SignedHeaders: []string{"X-Amz-Target"}, RequireSignedPayload: true, NormalizePath: true, Now: now, Skew: skew,
		Lookup: func(id string) (sigv4.Key, bool) {
			k, ok := keys.Lookup(id)
			return sigv4.Key{Secret: k.AccessKeySecret}, ok
		},
	})
	if err != nil {
		panic(err) // the configuration above is constant and valid
	}
	return &verifier{v: v, keys: keys}
}

// verify authenticates r with its body.
func (v *verifier) verify(r *http.Request, body []byte) (*authResult, error) {
	a, err := v.v.Verify(r, body)
	if err != nil {
		return nil, err
	}
	// The key (and its policy) as of now; one deleted since the signature
	// was checked is unknown.
	k, ok := v.keys.Lookup(a.AccessKeyID)
	if !ok {
		return nil, errorf(CodeUnrecognizedClient, "The security token included in the request is invalid.")
	}
	return &authResult{key: k, signature: a.Signature}, nil
}

// replay is the AWS replay rule: a signature is served once within the
// window. A signature seen already is refused now; the pipeline remembers
// it (the claim) once the rate limit and the policy passed. An access key
// over its share of the memory is throttled; an unreachable shared memory
// refuses (fail closed).
func (h *handler) replay(ctx context.Context, a *authResult) (*wire.ReplayClaim, error) {
	value := "aws\n" + string(a.signature)
	if seen, err := h.signatures.Peek(ctx, a.key.AccessKeyId, value, h.refuse); err != nil || seen {
		return nil, cmp.Or(err, errReplayed)
	}
	return wire.NewReplayClaim(func() error { return h.signatures.Claim(ctx, a.key.AccessKeyId, value, h.refuse) }), nil
}

var errReplayed = errorf(CodeInvalidSignature, "this signed request has been served already; sign the request again")

// claimedAccessKeyID is the access key id a request names, before it is
// verified (for the record of a refused request), clipped.
func claimedAccessKeyID(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(cred, "/")
	return provider.Clip(id, 64)
}
