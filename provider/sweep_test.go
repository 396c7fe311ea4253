package provider_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
)

// countContaining counts the entries of list that contain s.
func countContaining(list []string, s string) int {
	n := 0
	for _, e := range list {
		if strings.Contains(e, s) {
			n++
		}
	}
	return n
}

// TestSweepRepairsOrphanedKeyPairsAndWrappingKeys leaves in a real token
// what a kill leaves: the key pair of an asymmetric CreateKeyVersion and
// of an asymmetric CreateKey whose metadata was never written, a BYOK
// wrapping key of a key that no longer exists and one whose import token
// expired. Sweep destroys the expired one at once, lists the others in
// Orphans, and destroys them once seen for OrphanGrace; the key's own
// version, a live wrapping key and the service keys labelled p11kms/...
// (the access-keys sealing key) are untouched.
func TestSweepRepairsOrphanedKeyPairsAndWrappingKeys(t *testing.T) {
	s, tok, clk := newService(t)
	key, err := s.CreateKey(bg, &provider.CreateKeyRequest{KeySpec: provider.KeySpecECP256, KeyUsage: provider.KeyUsageSign})
	if err != nil {
		t.Fatal(err)
	}
	keyID, ver := key.KeyMetadata.KeyId, key.KeyMetadata.PrimaryKeyVersion
	ext, err := s.CreateKey(bg, &provider.CreateKeyRequest{Origin: provider.OriginExternal})
	if err != nil {
		t.Fatal(err)
	}
	extID := ext.KeyMetadata.KeyId
	live, err := s.GetParametersForImport(bg, &provider.GetParametersForImportRequest{KeyId: extID,
		WrappingKeySpec: provider.KeySpecRSA2048, WrappingAlgorithm: provider.AlgRSAOAEPSHA256})
	if err != nil {
		t.Fatal(err)
	}
	service := uuid.New()
	if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{ID: service[:], Label: "p11kms/access-keys"}); err != nil {
		t.Fatal(err)
	}
	var orphans []uuid.UUID
	for _, owner := range []string{keyID, uuid.NewString()} { // a CreateKeyVersion, a CreateKey
		id := uuid.New()
		if _, err := tok.GenerateCMKKeyPair(bg, hsm.CMKKeyPairOptions{Curve: hsm.CurveP256, Sign: true, ID: id[:],
			Label: "p11kms/" + owner + "/" + id.String()}); err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, id)
	}
	gone, expired := uuid.New(), uuid.New()
	for id, label := range map[uuid.UUID]string{
		gone:    fmt.Sprintf("p11kms-import/%s/%d", uuid.NewString(), clk.Now().Add(provider.ImportTokenLifetime).Unix()),
		expired: fmt.Sprintf("p11kms-import/%s/%d", extID, clk.Now().Unix()),
	} {
		if _, err := tok.GenerateKeyPair(bg, hsm.KeyPairOptions{Type: hsm.SM2, ID: id[:], Label: label}); err != nil {
			t.Fatal(err)
		}
	}

	res, err := s.Sweep(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Repaired) != 2 || countContaining(res.Repaired, "expired import wrapping key") != 2 ||
		len(res.Orphans) != 6 || countContaining(res.Orphans, "orphaned key version object") != 4 ||
		countContaining(res.Orphans, "orphaned import wrapping key") != 2 || len(res.Missing) != 0 {
		t.Fatalf("first sweep:\n%s", strings.Join(append(append(res.Repaired, res.Orphans...), res.Missing...), "\n"))
	}
	if _, err := tok.FindKeyPairByID(bg, expired[:]); !errors.Is(err, hsm.ErrNotFound) {
		t.Fatalf("the expired wrapping key is still there: %v", err)
	}
	clk.Add(provider.DefaultOrphanGrace)
	res, err = s.Sweep(bg)
	if err != nil || len(res.Repaired) != 6 || len(res.Orphans) != 0 || len(res.Missing) != 0 {
		t.Fatalf("second sweep: %+v %v", res, err)
	}
	for _, id := range append(orphans, gone) {
		if hs, err := tok.ObjectsByID(bg, id[:]); err != nil || len(hs) != 0 {
			t.Fatalf("orphan %s still has %d objects (%v)", id, len(hs), err)
		}
	}
	if _, err := tok.FindSecretKeyByID(bg, service[:]); err != nil {
		t.Fatalf("Sweep destroyed the service key p11kms/access-keys: %v", err)
	}
	// The key's own version still signs; the live import token still imports.
	if _, err := s.AsymmetricSign(bg, &provider.AsymmetricSignRequest{KeyId: keyID, KeyVersionId: ver, Algorithm: provider.AlgECDSASHA256,
		Digest: base64.StdEncoding.EncodeToString(make([]byte, 32))}); err != nil {
		t.Fatalf("the key's own version: %v", err)
	}
	der, _ := base64.StdEncoding.DecodeString(live.PublicKey)
	pub, _ := x509.ParsePKIXPublicKey(der)
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), make([]byte, 32), nil)
	if _, err := s.ImportKeyMaterial(bg, &provider.ImportKeyMaterialRequest{KeyId: extID, ImportToken: live.ImportToken,
		EncryptedKeyMaterial: base64.StdEncoding.EncodeToString(ct)}); err != nil {
		t.Fatalf("the live import token: %v", err)
	}
}

// TestSweepRepairOrphansNow: with RepairOrphans (p11kms kms Sweep
// --RepairOrphans, a one-shot process that never sees an object twice) the
// orphans go on the first sweep.
func TestSweepRepairOrphansNow(t *testing.T) {
	s, tok, _ := newService(t)
	id := uuid.New()
	if _, err := tok.GenerateCMKKeyPair(bg, hsm.CMKKeyPairOptions{Curve: hsm.CurveP256, Sign: true, ID: id[:],
		Label: "p11kms/" + uuid.NewString() + "/" + id.String()}); err != nil {
		t.Fatal(err)
	}
	res, err := s.SweepWith(bg, provider.SweepOptions{RepairOrphans: true})
	if err != nil || len(res.Repaired) != 2 || len(res.Orphans) != 0 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if hs, err := tok.ObjectsByID(bg, id[:]); err != nil || len(hs) != 0 {
		t.Fatalf("orphan still has %d objects (%v)", len(hs), err)
	}
}
