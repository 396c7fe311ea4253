package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// ServerOptions say how the server operations call the server: the
// signature their requests carry and how many callers share the client's
// keep-alive transport (one idle connection each).
type ServerOptions struct {
	Signature   Signature // acs3, rpc or tc3
	Concurrency int       // callers, and idle connections kept
}

// ServerOps starts the composed server on a loopback port (in this
// process, over the fixture's KMS, with serve's net/http settings) and returns operations that call it
// with requests signed by the bench's own client (no SDK). stop shuts the
// server down.
func (f *Fixture) ServerOps(o ServerOptions) (ops map[string]Op, stop func(), err error) {
	key := wire.NewAccessKey(accessKeyPrefix(o.Signature), wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}})
	addr, stop, err := newHTTPServer(server.New(server.Config{KMS: f.KMS, Keys: wire.NewAccessKeys(key)}))
	if err != nil {
		return nil, nil, err
	}
	if ops, err = f.RemoteOps(addr, key, o); err != nil {
		stop()
		return nil, nil, err
	}
	return ops, stop, nil
}

// accessKeyPrefix is the prefix of the ids each dialect's keys have
// (LTAI for Alibaba, AKID for Tencent).
func accessKeyPrefix(sig Signature) string {
	if sig == SignatureTC3 {
		return "AKID"
	}
	return "LTAI"
}

// RemoteOps are ServerOps against a server already running at addr (e.g.
// `p11kms serve --processes N` on the same token), signed with key. With
// TC3 only the operations Tencent's API has are returned (ServerOpsFor).
func (f *Fixture) RemoteOps(addr string, key wire.AccessKey, o ServerOptions) (map[string]Op, error) {
	if !slices.Contains(Signatures, o.Signature) {
		return nil, fmt.Errorf("signature %q: accepted %s", o.Signature, joinSignatures())
	}
	c := NewClient(Signer{Scheme: o.Signature, Host: addr, AccessKeyId: key.AccessKeyId, AccessKeySecret: key.AccessKeySecret},
		max(o.Concurrency, 1))
	ops := map[string]Op{}
	for name, sc := range f.serverCalls(o.Signature) {
		ops[name] = Op{Name: sc.label, Run: func(ctx context.Context) error { return c.Call(ctx, sc.action, sc.params) }}
	}
	return ops, nil
}

// serverCall is one server operation: the API action and its parameters.
type serverCall struct {
	label, action string
	params        map[string]string
}

// serverCalls are the server operations sig can drive, by name.
func (f *Fixture) serverCalls(sig Signature) map[string]serverCall {
	label := "HTTP+" + strings.ToUpper(string(sig)) + " "
	gdk := map[string]string{"KeyId": f.KeyId}
	if sig == SignatureTC3 {
		gdk["KeySpec"] = "AES_256" // Tencent requires KeySpec or NumberOfBytes
	}
	calls := map[string]serverCall{
		"server:GenerateDataKey": {label + "GenerateDataKey", "GenerateDataKey", gdk},
		"server:Decrypt":         {label + "Decrypt", "Decrypt", map[string]string{"CiphertextBlob": f.blob}},
	}
	if sig != SignatureTC3 {
		calls["server:GenerateAndExportDataKey-RSA"] = serverCall{label + "GenerateAndExportDataKey RSA-2048", "GenerateAndExportDataKey",
			map[string]string{"KeyId": f.KeyId, "PublicKeyBlob": f.rsaB64, "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}}
		calls["server:GenerateAndExportDataKey-SM2"] = serverCall{label + "GenerateAndExportDataKey SM2", "GenerateAndExportDataKey",
			map[string]string{"KeyId": f.KeyId, "PublicKeyBlob": f.sm2B64, "WrappingKeySpec": "EC_SM2", "WrappingAlgorithm": "SM2PKE"}}
	}
	return calls
}

// ServerOpNames lists the server operations and the in-process operation
// each is compared with.
var ServerOpNames = [][2]string{
	{"server:GenerateDataKey", "GenerateDataKey"},
	{"server:GenerateAndExportDataKey-RSA", "GenerateAndExportDataKey-RSA"},
	{"server:GenerateAndExportDataKey-SM2", "GenerateAndExportDataKey-SM2"},
	{"server:Decrypt", "Decrypt"},
}

// ServerOpsFor lists the server operations a signature can drive, in
// ServerOpNames order: Tencent's API has no GenerateAndExportDataKey.
func ServerOpsFor(sig Signature) []string {
	var names []string
	for _, pair := range ServerOpNames {
		if sig != SignatureTC3 || !strings.HasPrefix(pair[0], "server:GenerateAndExportDataKey") {
			names = append(names, pair[0])
		}
	}
	return names
}
