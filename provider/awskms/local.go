package awskms

import (
	"context"

	"github.com/p11kms/p11kms/provider"
)

// Local runs the dialect's operations in process, for the operator on the
// token's host (`p11kms aws <Operation>`): the same requests, checks,
// translations and responses as over the wire, without a signature or an
// access-key policy (the caller holds the token's PIN).
type Local struct {
	kms  *provider.Service
	refs refs
}

// NewLocal returns the operations over kms.
func NewLocal(kms *provider.Service) *Local {
	return &Local{kms: kms, refs: refs{region: kms.Region(), account: kms.Account()}}
}

// NewRequest returns a pointer to a zero request of the operation (its
// exported fields are the operation's parameters, tagged cli:"required"
// and help:"what it accepts"), or nil if the operation is not served.
func NewRequest(operation string) any {
	o, ok := ops[operation]
	if !ok {
		return nil
	}
	return o.action.New()
}

// Call runs the operation on req, a request from NewRequest.
func (l *Local) Call(ctx context.Context, operation string, req any) (any, error) {
	o, ok := ops[operation]
	if !ok {
		return nil, errorf(CodeUnknownOperation, "%s is not a KMS operation p11kms serves: accepted %s", provider.Clip(operation, 64), opNames())
	}
	if err := prepareRequest(req, l.refs); err != nil {
		return nil, err
	}
	c := &call{ctx: provider.WithRequestID(ctx, provider.NewRequestID()), kms: l.kms, refs: l.refs, setKey: func(string, string) {}}
	return o.do(c, req)
}

// ErrorBody is AWS's error shape for err: its name (__type), HTTP status
// and message, as the wire answers it.
func ErrorBody(err error) (code string, status int, message string) { return codeOf(err) }
