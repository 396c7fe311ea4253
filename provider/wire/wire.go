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
	"reflect"
	"time"

	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
)

// Action is one row of a dialect's action table: a wire action and the
// core operation it runs.
type Action struct {
	// Name is the action as the dialect names it: what policies name.
	Name string
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
func act[Req, Resp any](name string, op func(*provider.Service, context.Context, *Req) (*Resp, error), touches func(*Req) Touched) Action {
	a := Action{
		Name: name,
		New:  func() any { return new(Req) },
		Call: func(c *Call, req any) (any, error) {
			resp, err := op(c.KMS, c.Ctx, req.(*Req))
			if err != nil || resp == nil {
				return nil, err
			}
			if id, ver := responseKeyIds(resp); id != "" {
				c.SetKey(id, ver)
			}
			return resp, nil
		},
	}
	if touches != nil {
		a.Touches = func(req any) []Touched { return []Touched{touches(req.(*Req))} }
	}
	return a
}

// keyID is the Touched of a request whose KeyId field names its key.
func keyID(ref *string) Touched { return Touched{KeyParam: "KeyId", Key: ref} }

// Actions is every KMS action, by API name.
var Actions = map[string]Action{}

func init() {
	type p = provider.Service
	for _, a := range []Action{
		act("CreateKey", (*p).CreateKey, nil),
		act("DescribeKey", (*p).DescribeKey, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) }),
		act("ListKeys", (*p).ListKeys, nil),
		act("EnableKey", (*p).EnableKey, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) }),
		act("DisableKey", (*p).DisableKey, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) }),
		act("ScheduleKeyDeletion", (*p).ScheduleKeyDeletion, func(r *provider.ScheduleKeyDeletionRequest) Touched { return keyID(&r.KeyId) }),
		act("CancelKeyDeletion", (*p).CancelKeyDeletion, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) }),
		act("UpdateRotationPolicy", (*p).UpdateRotationPolicy, func(r *provider.UpdateRotationPolicyRequest) Touched { return keyID(&r.KeyId) }),
		act("CreateKeyVersion", (*p).CreateKeyVersion, func(r *provider.KeyIdRequest) Touched { return keyID(&r.KeyId) }),
		act("ListKeyVersions", (*p).ListKeyVersions, func(r *provider.ListKeyVersionsRequest) Touched { return keyID(&r.KeyId) }),
		act("DescribeKeyVersion", (*p).DescribeKeyVersion, func(r *provider.DescribeKeyVersionRequest) Touched { return keyID(&r.KeyId) }),
		act("CreateAlias", (*p).CreateAlias, aliasTouched),
		act("UpdateAlias", (*p).UpdateAlias, aliasTouched),
		act("DeleteAlias", (*p).DeleteAlias, func(r *provider.DeleteAliasRequest) Touched { return Touched{Alias: r.AliasName} }),
		act("ListAliases", (*p).ListAliases, nil),
		act("ListAliasesByKeyId", (*p).ListAliasesByKeyId, func(r *provider.ListAliasesByKeyIdRequest) Touched { return keyID(&r.KeyId) }),
		act("GenerateDataKey", (*p).GenerateDataKey, func(r *provider.GenerateDataKeyRequest) Touched { return keyID(&r.KeyId) }),
		act("GenerateDataKeyWithoutPlaintext", (*p).GenerateDataKeyWithoutPlaintext,
			func(r *provider.GenerateDataKeyWithoutPlaintextRequest) Touched { return keyID(&r.KeyId) }),
		act("GenerateAndExportDataKey", (*p).GenerateAndExportDataKey,
			func(r *provider.GenerateAndExportDataKeyRequest) Touched { return keyID(&r.KeyId) }),
		act("ExportDataKey", (*p).ExportDataKey, func(r *provider.ExportDataKeyRequest) Touched { return Touched{Blob: r.CiphertextBlob} }),
		act("Encrypt", (*p).Encrypt, func(r *provider.EncryptRequest) Touched { return keyID(&r.KeyId) }),
		act("Decrypt", (*p).Decrypt, func(r *provider.DecryptRequest) Touched { return Touched{Blob: r.CiphertextBlob} }),
		act("ReEncrypt", (*p).ReEncrypt, func(r *provider.ReEncryptRequest) Touched {
			return Touched{KeyParam: "DestinationKeyId", Key: &r.DestinationKeyId, Blob: r.CiphertextBlob}
		}),
	} {
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
	Code         string // "" on success, else the wire error code
	HTTPStatus   int
	Latency      time.Duration
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

// responseKeyIds finds KeyId and KeyVersionId in a core response, at the
// top level or in KeyMetadata / KeyVersion.
func responseKeyIds(resp any) (keyID, versionID string) {
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return "", ""
	}
	str := func(s reflect.Value, name string) string {
		if f := s.FieldByName(name); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
		return ""
	}
	s := v.Elem()
	keyID, versionID = str(s, "KeyId"), str(s, "KeyVersionId")
	for _, nested := range []string{"KeyMetadata", "KeyVersion"} {
		if n := s.FieldByName(nested); n.IsValid() && n.Kind() == reflect.Struct && keyID == "" {
			keyID, versionID = str(n, "KeyId"), str(n, "KeyVersionId")
		}
	}
	return keyID, versionID
}
