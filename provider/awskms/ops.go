package awskms

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// call is one authorized operation's context: the core, the ARNs' region
// and account, and where the key used is recorded.
type call struct {
	ctx    context.Context
	kms    *provider.Service
	refs   refs
	setKey func(keyID, versionID string)
}

// key records the key id (and version) the operation used.
func (c *call) key(id, version string) {
	if id != "" {
		c.setKey(id, version)
	}
}

// op is one row of the table: the pipeline's wire.Action (request shape,
// what it touches, the core call) and the call itself, which Local runs
// without the pipeline.
type op struct {
	action  wire.Action
	do      func(c *call, req any) (any, error)
	summary string // one line, for `p11kms aws` help
}

// says sets the row's one-line summary.
func (o *op) says(summary string) *op {
	o.summary = summary
	return o
}

// preparer is a request that checks its parameters and translates AWS
// key references to the core's, once decoded and before it is authorized.
type preparer interface{ prepare(r refs) error }

// refsOf is the ARN form of the core's region and account.
func refsOf(kms *provider.Service) refs { return refs{region: kms.Region(), account: kms.Account()} }

// operation builds a row: Req is the AWS request shape, touches says what
// it touches for authorization (nil: nothing but the action), do calls
// the core and returns the AWS response.
func operation[Req any](touches func(*Req) wire.Touched, do func(*call, *Req) (any, error)) *op {
	o := &op{do: func(c *call, req any) (any, error) { return do(c, req.(*Req)) }}
	o.action = wire.Action{
		New: func() any { return new(Req) },
		Call: func(wc *wire.Call, req any) (any, error) {
			return o.do(&call{ctx: wc.Ctx, kms: wc.KMS, refs: refsOf(wc.KMS), setKey: wc.SetKey}, req)
		},
	}
	if touches != nil {
		o.action.Touches = func(req any) []wire.Touched { return []wire.Touched{touches(req.(*Req))} }
	}
	return o
}

// keyParam is the Touched of a request whose KeyId names its key.
func keyParam(ref *string) wire.Touched { return wire.Touched{KeyParam: "KeyId", Key: ref} }

// ops is every operation served, by its X-Amz-Target name: what
// policies name.
var ops = map[string]*op{}

func register(table map[string]*op) {
	for name, o := range table {
		o.action.Name, o.action.Write = name, slices.Contains(writes, name)
		ops[name] = o
	}
}

// writes are the operations that change stored state: the table's
// read/write column (wire.Action.Write); every other operation is a read.
var writes = strings.Fields(`CreateKey EnableKey DisableKey ScheduleKeyDeletion CancelKeyDeletion UpdateKeyDescription
	EnableKeyRotation DisableKeyRotation RotateKeyOnDemand CreateAlias UpdateAlias DeleteAlias TagResource UntagResource
	GetParametersForImport ImportKeyMaterial DeleteImportedKeyMaterial`)

// prepare decodes the JSON body into a new request of the row, strictly,
// and checks and translates it.
func (o *op) prepare(body []byte, r refs) (any, error) {
	req := o.action.New()
	if err := decode(body, req); err != nil {
		return nil, err
	}
	return req, prepareRequest(req, r)
}

// prepareRequest runs a decoded (or CLI-filled) request's own checks.
func prepareRequest(req any, r refs) error {
	if p, ok := req.(preparer); ok {
		return p.prepare(r)
	}
	return nil
}

// opNames is the sorted list of operations served, for messages.
func opNames() string {
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Operations returns the names of the operations served, sorted.
func Operations() []string { return strings.Split(opNames(), ", ") }

// Summary is an operation's one-line description ("" if not served).
func Summary(operation string) string {
	if o, ok := ops[operation]; ok {
		return o.summary
	}
	return ""
}

// decode reads the JSON body into req with the pipeline's strict decoder
// (wire.DecodeJSON: exact, known, unrepeated names and matching types; an
// empty body is {}), its refusals as SerializationException naming the
// parameter.
func decode(body []byte, req any) error {
	err := wire.DecodeJSON(body, req)
	var de *wire.DecodeError
	if errors.As(err, &de) {
		return errorf(CodeSerialization, "%s", de.Msg)
	}
	return err
}

// oneOf checks an enum parameter: "" (absent) or one of the values.
func oneOf(param, v string, values ...string) error {
	if v == "" || slices.Contains(values, v) {
		return nil
	}
	return invalid(param, "%q: accepted %s", provider.Clip(v, 64), strings.Join(values, ", "))
}

// intRange checks an optional integer parameter.
func intRange(param string, v *int, lo, hi int) error {
	if v != nil && (*v < lo || *v > hi) {
		return invalid(param, "%d: accepted an integer from %d to %d", *v, lo, hi)
	}
	return nil
}

// noGrants refuses grant tokens, which this KMS does not issue.
func noGrants(tokens []string) error {
	if len(tokens) > 0 {
		return errorf(CodeInvalidGrantToken, "GrantTokens: grants are not supported by p11kms; access is the access key's policy")
	}
	return nil
}

func unsupported(param, why string) error {
	return errorf(CodeUnsupportedOp, "%s: %s", param, why)
}
