package awskms_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/internal/hsmtest"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// TestTokenFailureIsKMSInternalException: a device error, or a panic, in
// the token call that seals a data key is KMSInternalException (HTTP 500)
// whose message names no PKCS#11 detail, recorded with its cause; the next
// request is served.
func TestTokenFailureIsKMSInternalException(t *testing.T) {
	tok, faults := hsmtest.Open(t, softhsmtest.Create(t).Config)
	svc := provider.New(tok, provider.Options{Region: region, Account: account})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: accessID, AccessKeySecret: secret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	obs := &recorder{}
	srv := httptest.NewServer(server.New(server.Config{KMS: svc, Keys: keys, Audit: obs}))
	defer srv.Close()
	c := (&env{srv: srv}).admin()
	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	for _, f := range []hsmtest.Fault{{Call: "C_Encrypt", Code: pkcs11.CKR_DEVICE_ERROR, Times: 10}, {Call: "C_Encrypt", Panic: true}} {
		faults.Add(f)
		_, err := c.GenerateDataKey(ctx(), &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256})
		faults.Clear()
		wantErr(t, "GenerateDataKey with a failing token", err, "KMSInternalException", 500)
		if strings.Contains(err.Error(), "CKR_") || strings.Contains(err.Error(), "panic") {
			t.Fatalf("the client is told the token's detail: %v", err)
		}
		if rec := obs.last(); rec.Err == nil || rec.Code != "KMSInternalException" || rec.API != "aws" {
			t.Fatalf("record of the failure: %+v", rec)
		}
		must[*kms.GenerateDataKeyOutput](t, "GenerateDataKey after the failure")(c.GenerateDataKey(ctx(), &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256}))
	}
}
