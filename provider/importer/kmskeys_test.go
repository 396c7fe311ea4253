package importer_test

import (
	"testing"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
)

// TestListWrappingKeysLeavesOutTheKMSsKeys: on a token the KMS shares, the
// KMS's own private keys — an asymmetric CMK's key pair and a BYOK
// wrapping key made by GetParametersForImport — are not the importer's
// wrapping keys: ListWrappingKeys leaves them out, and their labels cannot
// be taken (InvalidParameter naming KeyLabel).
func TestListWrappingKeysLeavesOutTheKMSsKeys(t *testing.T) {
	tok, svc := newService(t)
	kms := provider.New(tok.Token, provider.Options{})
	if _, err := kms.CreateKey(bg, &provider.CreateKeyRequest{KeySpec: provider.KeySpecRSA2048}); err != nil {
		t.Fatal(err)
	}
	ext, err := kms.CreateKey(bg, &provider.CreateKeyRequest{Origin: provider.OriginExternal})
	if err != nil {
		t.Fatal(err)
	}
	p, err := kms.GetParametersForImport(bg, &provider.GetParametersForImportRequest{KeyId: ext.KeyMetadata.KeyId,
		WrappingKeySpec: provider.KeySpecRSA2048, WrappingAlgorithm: provider.AlgRSAOAEPSHA256})
	if err != nil || p.ImportToken == "" {
		t.Fatalf("GetParametersForImport: %+v %v", p, err)
	}
	own := createWrappingKey(t, svc, "RSA_2048", "mine")
	list, err := svc.ListWrappingKeys(bg, &importer.ListWrappingKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 1 || len(list.WrappingKeys) != 1 || list.WrappingKeys[0].KeyLabel != "mine" || list.WrappingKeys[0].KeyId != own.KeyId {
		t.Fatalf("ListWrappingKeys lists the KMS's keys: %+v", list)
	}
	for _, label := range []string{"p11kms-import/" + ext.KeyMetadata.KeyId + "/1", "p11kms-import-token", "p11kms/x/y"} {
		_, err := svc.CreateWrappingKey(bg, &importer.CreateWrappingKeyRequest{WrappingKeySpec: "RSA_2048", KeyLabel: label})
		wantError(t, err, provider.CodeInvalidParameter, "KeyLabel")
	}
}
