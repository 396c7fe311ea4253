package wrap

import (
	"errors"
	"strings"
	"testing"
)

// wrap's parameter errors name a neutral Field, never a wire API's
// parameter: the dialects map the field to their names (the core's
// FromWrap: PublicKeyBlob, WrappingAlgorithm, ...; Tencent's:
// EncryptionPublicKey, EncryptionAlgorithm). Before, ParamError carried
// the API names itself.
func TestParamErrorsNameNoAPIParameter(t *testing.T) {
	_, badSpec := ParseKeySpec("RSA_1024")
	_, badAlg := LookupAlgorithm("RSAES_OAEP_SHA_512")
	_, badBlob := ParsePublicKeyBlob("!!", SpecRSA2048)
	_, _, badPEM := ParsePublicKeyPEM("not a key")
	_, badContext := ParseEncryptionContextJSON("[1]", 1024)
	_, badKey := KCV([]byte{1})
	_, badBlobBytes := ParseBlob([]byte{1, 2})
	for field, err := range map[Field]error{FieldKeySpec: badSpec, FieldAlgorithm: badAlg, FieldPublicKey: badBlob,
		Field("pem " + FieldPublicKey): badPEM, FieldContext: badContext, FieldKey: badKey, FieldCiphertext: badBlobBytes} {
		var pe *ParamError
		if !errors.As(err, &pe) || !strings.HasSuffix(string(field), string(pe.Field)) {
			t.Errorf("%s: %v is not a *ParamError for that field", field, err)
			continue
		}
		for _, api := range []string{"PublicKeyBlob", "EncryptionPublicKey", "WrappingKeySpec", "WrappingAlgorithm", "EncryptionAlgorithm", "EncryptionContext"} {
			if strings.Contains(pe.Error(), api) {
				t.Errorf("%s: %q names the API parameter %s", field, pe.Error(), api)
			}
		}
	}
}
