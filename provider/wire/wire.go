// Package wire holds what the Alibaba- and Tencent-compatible front-ends
// share: the table of KMS actions, access keys and their policies, the
// nonce/signature replay memory, and the per-request record that feeds the
// audit log and metrics. It does no HTTP itself.
package wire

import (
	"context"
	"time"

	"github.com/p11kms/p11kms/provider"
)

// Action is one KMS operation reachable over the wire.
type Action struct {
	Name string
	// New returns a pointer to a zero request struct of the provider.
	New func() any
	// Call runs it.
	Call func(ctx context.Context, s *provider.Service, req any) (any, error)
	// KeyParam names the request field holding the key reference checked by
	// policies ("KeyId", "DestinationKeyId"), or "" if none.
	KeyParam string
	// BlobParam names the field holding a CiphertextBlob whose key is
	// checked by policies, or "".
	BlobParam string
}

func act[Req, Resp any](name string, op func(*provider.Service, context.Context, *Req) (*Resp, error), keyParam, blobParam string) Action {
	return Action{
		Name: name,
		New:  func() any { return new(Req) },
		Call: func(ctx context.Context, s *provider.Service, req any) (any, error) {
			return op(s, ctx, req.(*Req))
		},
		KeyParam:  keyParam,
		BlobParam: blobParam,
	}
}

// Actions is every KMS action, by API name.
var Actions = map[string]Action{}

func init() {
	for _, a := range []Action{
		act("CreateKey", (*provider.Service).CreateKey, "", ""),
		act("DescribeKey", (*provider.Service).DescribeKey, "KeyId", ""),
		act("ListKeys", (*provider.Service).ListKeys, "", ""),
		act("EnableKey", (*provider.Service).EnableKey, "KeyId", ""),
		act("DisableKey", (*provider.Service).DisableKey, "KeyId", ""),
		act("ScheduleKeyDeletion", (*provider.Service).ScheduleKeyDeletion, "KeyId", ""),
		act("CancelKeyDeletion", (*provider.Service).CancelKeyDeletion, "KeyId", ""),
		act("UpdateRotationPolicy", (*provider.Service).UpdateRotationPolicy, "KeyId", ""),
		act("CreateKeyVersion", (*provider.Service).CreateKeyVersion, "KeyId", ""),
		act("ListKeyVersions", (*provider.Service).ListKeyVersions, "KeyId", ""),
		act("DescribeKeyVersion", (*provider.Service).DescribeKeyVersion, "KeyId", ""),
		act("CreateAlias", (*provider.Service).CreateAlias, "KeyId", ""),
		act("UpdateAlias", (*provider.Service).UpdateAlias, "KeyId", ""),
		act("DeleteAlias", (*provider.Service).DeleteAlias, "", ""),
		act("ListAliases", (*provider.Service).ListAliases, "", ""),
		act("ListAliasesByKeyId", (*provider.Service).ListAliasesByKeyId, "KeyId", ""),
		act("GenerateDataKey", (*provider.Service).GenerateDataKey, "KeyId", ""),
		act("GenerateDataKeyWithoutPlaintext", (*provider.Service).GenerateDataKeyWithoutPlaintext, "KeyId", ""),
		act("GenerateAndExportDataKey", (*provider.Service).GenerateAndExportDataKey, "KeyId", ""),
		act("ExportDataKey", (*provider.Service).ExportDataKey, "", "CiphertextBlob"),
		act("Encrypt", (*provider.Service).Encrypt, "KeyId", ""),
		act("Decrypt", (*provider.Service).Decrypt, "", "CiphertextBlob"),
		act("ReEncrypt", (*provider.Service).ReEncrypt, "DestinationKeyId", "CiphertextBlob"),
	} {
		Actions[a.Name] = a
	}
}

// Record is what one request leaves in the audit log and metrics. It never
// holds a plaintext, a key, a PIN or a secret.
type Record struct {
	Time         time.Time
	RequestId    string
	AccessKeyId  string
	SourceAddr   string
	API          string // "aliyun" or "tencent"
	Action       string
	KeyId        string
	KeyVersionId string
	Code         string // "" on success, else the wire error code
	HTTPStatus   int
	Latency      time.Duration
	// Err is why an InternalFailure failed (PKCS#11 return values, what
	// was being done): for the server's own log, never sent to the client
	// and never written to the audit log.
	Err error
}

// Observer receives one Record per request (audit log, metrics).
type Observer interface {
	Observe(Record)
}

// Limiter decides whether an access key may make one more request now.
type Limiter interface {
	Allow(accessKeyID string) bool
}
