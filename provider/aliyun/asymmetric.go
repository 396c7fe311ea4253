package aliyun

import (
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// coreFields are the Alibaba parameters of the asymmetric and key-import
// actions whose core request field has another, neutral name (issue 16:
// the core knows no wire name), by action: Alibaba's name → the core's.
var coreFields = map[string]map[string]string{
	"AsymmetricDecrypt": {"CiphertextBlob": "Ciphertext"},
	"AsymmetricVerify":  {"Value": "Signature"},
	"ImportKeyMaterial": {"KeyMaterialExpireUnix": "ValidTo"},
}

// wireName is the Alibaba parameter of the action's core field.
func wireName(action, field string) string {
	for w, f := range coreFields[action] {
		if f == field {
			return w
		}
	}
	return field
}

// withWireNames makes the row's core errors name the parameters as
// Alibaba does (the core's ValidTo is KeyMaterialExpireUnix here).
func withWireNames(a wire.Action) wire.Action {
	names := map[string]string{}
	for w, f := range coreFields[a.Name] {
		names[f] = w
	}
	if len(names) == 0 {
		return a
	}
	call := a.Call
	a.Call = func(c *wire.Call, req any) (any, error) {
		resp, err := call(c, req)
		return resp, provider.RenameParams(err, names)
	}
	return a
}
