// Package wire is the request pipeline every wire dialect (Alibaba,
// Tencent, ...) runs through (Serve, over a Dialect: its action table, its
// signature verifier, its error map), and what the steps share: the
// request read once, the core's action table, access keys and their
// policies, authorization with each key resolved once, the nonce/signature
// replay memory, and the per-request record that feeds the audit log and
// metrics. The dialect encodes the HTTP answer.
package wire

import (
	"context"
	"time"

	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
)

// Action is one row of a dialect's action table: a wire action and the
// core operation it runs.
type Action struct {
	// Name is the action as the dialect names it: what policies name.
	Name string
	// Short is a one-line description (the CLI's help).
	Short string
	// Write marks an action that changes stored state (a key, a version,
	// an alias, imported material); false is a read (a listing, a
	// description, a cryptographic operation). The pipeline records it
	// (Record.Write), a policy's ReadActions allows only reads, and a
	// dialect's replay rule may let reads repeat (SignatureReuse).
	Write bool
	// New returns a pointer to a zero request of the action (what the
	// dialect's Decode fills).
	New func() any
	// Touches returns what a decoded request touches (its key parameter,
	// CiphertextBlob, alias), pointing into the request so that the
	// pipeline can make it name the key id it checked; nil when the
	// action names none (the action alone is authorized).
	Touches func(req any) []Touched
	// SkipMissing: a touched key that does not exist is left out (its
	// field set to "") instead of failing the request (a batch describe).
	SkipMissing bool
	// More, if set, finds what else the request will change, in the store,
	// after Touches were authorized (the aliases an UpdateAlias replaces);
	// each is authorized too, before the operation runs.
	More func(c *Call, req any) ([]Touched, error)
	// Call runs the core operation with the authorized request and
	// returns the dialect's response (never nil without an error).
	Call func(c *Call, req any) (any, error)
}

// act is a row of the core's own table: the request and response are the
// core's, and the record gets the key the response names.
func act[Req, Resp any](name, short string, op func(*provider.Service, context.Context, *Req) (*Resp, error), touches func(*Req) Touched) Action {
	a := Action{
		Name:  name,
		Short: short,
		New:   func() any { return new(Req) },
		Call: func(c *Call, req any) (any, error) {
			resp, err := op(c.KMS, c.Ctx, req.(*Req))
			if err != nil || resp == nil {
				return nil, err
			}
			if k, ok := any(resp).(keyedResponse); ok {
				if id, ver := k.KeyIds(); id != "" {
					c.SetKey(id, ver)
				}
			}
			return resp, nil
		},
	}
	if touches != nil {
		a.Touches = func(req any) []Touched { return []Touched{touches(req.(*Req))} }
	}
	return a
}

// Writes marks a row as a write (Action.Write): the table's read/write
// column.
func Writes(a Action) Action {
	a.Write = true
	return a
}

// keyedResponse is a core response that names the key it used
// (provider.GenerateDataKeyResponse.KeyIds, ...).
type keyedResponse interface {
	KeyIds() (keyID, versionID string)
}

// keyID is the Touched of a request whose KeyId field names its key.
func keyID(ref *string) Touched { return Touched{KeyParam: "KeyId", Key: ref} }

// Actions is every core action, by API name (the Alibaba dialect's table).
var Actions = map[string]Action{}

// CoreActions is every core action, in the order the CLI lists them: the
// one list of the core's operations, from which Actions and the CLI's
// `kms` commands are made.
var CoreActions []Action

func init() {
	type p = provider.Service
	w := Writes
	CoreActions = []Action{
		w(act("CreateKey", "Create a CMK (AES-256 in the token)", (*p).CreateKey, nil)),
		act("DescribeKey", "Describe a CMK", (*p).DescribeKey, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) }),
		act("ListKeys", "List CMKs", (*p).ListKeys, func(r *provider.ListKeysRequest) Touched { return Touched{Visible: &r.Visible} }),
		w(act("EnableKey", "Enable a CMK", (*p).EnableKey, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) })),
		w(act("DisableKey", "Disable a CMK", (*p).DisableKey, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) })),
		w(act("ScheduleKeyDeletion", "Schedule a CMK's destruction after 7-366 days", (*p).ScheduleKeyDeletion, func(r *provider.ScheduleKeyDeletionRequest) Touched { return keyID(&r.KeyId) })),
		w(act("CancelKeyDeletion", "Cancel a scheduled destruction", (*p).CancelKeyDeletion, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) })),
		w(act("UpdateRotationPolicy", "Turn automatic rotation on or off", (*p).UpdateRotationPolicy, func(r *provider.UpdateRotationPolicyRequest) Touched { return keyID(&r.KeyId) })),
		w(act("CreateKeyVersion", "Create a new primary version (rotate)", (*p).CreateKeyVersion, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) })),
		act("ListKeyVersions", "List a CMK's versions", (*p).ListKeyVersions, func(r *provider.ListKeyVersionsRequest) Touched { return keyID(&r.KeyId) }),
		act("DescribeKeyVersion", "Describe a version", (*p).DescribeKeyVersion, func(r *provider.DescribeKeyVersionRequest) Touched { return keyID(&r.KeyId) }),
		w(act("CreateAlias", "Create an alias", (*p).CreateAlias, aliasTouched)),
		w(act("UpdateAlias", "Point an alias at another key", (*p).UpdateAlias, aliasTouched)),
		w(act("DeleteAlias", "Delete an alias", (*p).DeleteAlias, func(r *provider.DeleteAliasRequest) Touched { return Touched{Alias: r.AliasName} })),
		act("ListAliases", "List aliases", (*p).ListAliases, func(r *provider.ListAliasesRequest) Touched { return Touched{Visible: &r.Visible} }),
		act("ListAliasesByKeyId", "List a CMK's aliases", (*p).ListAliasesByKeyId, func(r *provider.ListAliasesByKeyIdRequest) Touched {
			return Touched{KeyParam: "KeyId", Key: &r.KeyId, Visible: &r.Visible}
		}),
		act("GenerateDataKey", "Generate a data key (Tencent: with EncryptionPublicKey)", (*p).GenerateDataKey, func(r *provider.GenerateDataKeyRequest) Touched { return keyID(&r.KeyId) }),
		act("GenerateDataKeyWithoutPlaintext", "Generate a data key, returned only under the CMK", (*p).GenerateDataKeyWithoutPlaintext,
			func(r *provider.GenerateDataKeyWithoutPlaintextRequest) Touched { return keyID(&r.KeyId) }),
		act("GenerateAndExportDataKey", "Generate a data key under the CMK and a public key", (*p).GenerateAndExportDataKey,
			func(r *provider.GenerateAndExportDataKeyRequest) Touched { return keyID(&r.KeyId) }),
		act("ExportDataKey", "Re-wrap a CiphertextBlob's key under a public key", (*p).ExportDataKey, func(r *provider.ExportDataKeyRequest) Touched { return Touched{Blob: r.CiphertextBlob} }),
		act("Encrypt", "Encrypt up to 6 KiB under a CMK", (*p).Encrypt, func(r *provider.EncryptRequest) Touched { return keyID(&r.KeyId) }),
		act("Decrypt", "Decrypt a CiphertextBlob", (*p).Decrypt, func(r *provider.DecryptRequest) Touched { return Touched{Blob: r.CiphertextBlob} }),
		act("ReEncrypt", "Re-encrypt a CiphertextBlob under another key (never exports the data key)", (*p).ReEncrypt, func(r *provider.ReEncryptRequest) Touched {
			return Touched{KeyParam: "DestinationKeyId", Key: &r.DestinationKeyId, Blob: r.CiphertextBlob}
		}),
	}
	CoreActions = append(CoreActions, asymmetricActions()...) // asymmetric.go
	for _, a := range CoreActions {
		Actions[a.Name] = a
	}
}

// aliasTouched is what CreateAlias and UpdateAlias touch: the alias, and
// the key it is to name (a key id or ARN, never another alias).
func aliasTouched(r *provider.AliasRequest) Touched {
	return Touched{KeyParam: "KeyId", Key: &r.KeyId, KeyIdOnly: true, Alias: r.AliasName}
}

// Record is what one request leaves in the audit log and metrics. It never
// holds a plaintext, a key, a PIN or a secret.
type Record struct {
	Time         time.Time
	RequestId    string
	AccessKeyId  string
	SourceAddr   string
	API          string // "aliyun" or "tencent"
	Action       string // set by SetAction: a known action name, UnknownAction or "" (not authenticated)
	KeyId        string
	KeyVersionId string
	Write        bool   // the action's row is a write (Action.Write)
	Code         string // "" on success, else the wire error code
	HTTPStatus   int
	Latency      time.Duration
	// Metadata is the request context a wire API sends besides its
	// parameters, for the audit log only (XKS: requestMetadata, by its JSON
	// names); the dialect sets it after authentication, from a closed set
	// of names. Never a metric label.
	Metadata map[string]string
	// Err is why an InternalFailure failed (PKCS#11 return values, what
	// was being done): for the server's own log, never sent to the client
	// and never written to the audit log.
	Err error
}

// UnknownAction is the Record.Action of an authenticated request whose
// action its dialect does not know: one label, whatever the request said.
const UnknownAction = "unknown"

// SetAction records the request's action. The dialect calls it only after
// authentication succeeded, with known saying whether name is one of the
// dialect's closed set of action names; an unknown name is recorded as
// UnknownAction. So Action, a metric label, takes values from a closed set
// and nothing an unauthenticated caller sends creates a series.
func (r *Record) SetAction(name string, known bool) {
	if known {
		r.Action = name
	} else {
		r.Action = UnknownAction
	}
}

// Observer receives one Record per request (audit log, metrics).
type Observer interface {
	Observe(Record)
}

// Limiter decides whether an access key may make one more request now
// (state.LocalLimiter in process, state.RedisLimiter shared by the nodes).
type Limiter = state.RateLimiter
