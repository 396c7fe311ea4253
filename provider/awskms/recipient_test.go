package awskms_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/p11kms/p11kms/internal/nitrotest"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/awskms"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap/nitro"
)

// enclave is a recipient: an RSA key pair, its private half in a PEM file
// for openssl.
type enclave struct {
	spki    []byte
	keyFile string
}

func newEnclave(t *testing.T) *enclave {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f := filepath.Join(t.TempDir(), "enclave.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &enclave{spki: spki, keyFile: f}
}

// open is `openssl cms -decrypt` of a CiphertextForRecipient.
func (e *enclave) open(t *testing.T, env []byte) []byte {
	t.Helper()
	in := filepath.Join(t.TempDir(), "env.der")
	os.WriteFile(in, env, 0o600)
	out, err := exec.Command("openssl", "cms", "-decrypt", "-inform", "DER", "-in", in, "-inkey", e.keyFile, "-binary").Output()
	if err != nil {
		t.Fatalf("openssl cms -decrypt: %v", err)
	}
	return out
}

func recipientEnv(t *testing.T, v nitro.Verifier) *env {
	tok := softhsmtest.New(t)
	svc := provider.New(tok.Token, provider.Options{Region: region, Account: account})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: accessID, AccessKeySecret: secret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	srv := httptest.NewServer(awskms.New(awskms.Config{Config: wire.Config{KMS: svc, Keys: keys}, Attestation: v}))
	t.Cleanup(srv.Close)
	return &env{srv: srv, kms: svc}
}

// TestRecipient: GenerateDataKey, Decrypt and GenerateRandom with a
// Recipient answer CiphertextForRecipient (no Plaintext), a CMS
// EnvelopedData that openssl cms -decrypt opens with the enclave's key;
// an attestation document that is unsigned, tampered or of another root
// is refused naming Recipient.AttestationDocument.
func TestRecipient(t *testing.T) {
	ca := nitrotest.NewCA(t)
	enc := newEnclave(t)
	e := recipientEnv(t, nitro.Verifier{Roots: ca.Roots})
	c := e.admin()
	rcpt := func(doc []byte) *types.RecipientInfo {
		return &types.RecipientInfo{KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256, AttestationDocument: doc}
	}
	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId

	dk := must[*kms.GenerateDataKeyOutput](t, "GenerateDataKey")(c.GenerateDataKey(ctx(), &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256,
		Recipient: rcpt(ca.Signed(t, enc.spki))}))
	if dk.Plaintext != nil || len(dk.CiphertextForRecipient) == 0 {
		t.Fatalf("GenerateDataKey with Recipient: Plaintext %d bytes, CiphertextForRecipient %d", len(dk.Plaintext), len(dk.CiphertextForRecipient))
	}
	plain := must[*kms.DecryptOutput](t, "Decrypt")(c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})).Plaintext
	if got := enc.open(t, dk.CiphertextForRecipient); len(got) != 32 || !bytes.Equal(got, plain) {
		t.Fatal("the enveloped data key is not the CiphertextBlob's")
	}

	blob := must[*kms.EncryptOutput](t, "Encrypt")(c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("for the enclave")})).CiphertextBlob
	dec := must[*kms.DecryptOutput](t, "Decrypt with Recipient")(c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: blob, Recipient: rcpt(ca.Signed(t, enc.spki))}))
	if dec.Plaintext != nil || string(enc.open(t, dec.CiphertextForRecipient)) != "for the enclave" {
		t.Fatal("Decrypt with Recipient")
	}
	r := must[*kms.GenerateRandomOutput](t, "GenerateRandom with Recipient")(c.GenerateRandom(ctx(), &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(40),
		Recipient: rcpt(ca.Signed(t, enc.spki))}))
	if r.Plaintext != nil || len(enc.open(t, r.CiphertextForRecipient)) != 40 {
		t.Fatal("GenerateRandom with Recipient")
	}

	other := nitrotest.NewCA(t)
	for name, doc := range map[string][]byte{
		"unsigned":         nitrotest.Unsigned(enc.spki),
		"tampered payload": ca.Resigned(t, enc.spki, newEnclave(t).spki),
		"another root":     other.Signed(t, enc.spki),
		"not RSA":          ca.Signed(t, []byte("not a key")),
	} {
		_, err := c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: blob, Recipient: rcpt(doc)})
		wantErr(t, "Decrypt with an attestation document "+name, err, "ValidationException", 400)
		if !strings.Contains(err.Error(), "Recipient.AttestationDocument") {
			t.Fatalf("%s: %v does not name Recipient.AttestationDocument", name, err)
		}
	}
	_, err := c.GenerateRandom(ctx(), &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(8), Recipient: &types.RecipientInfo{KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256}})
	wantErr(t, "Recipient without AttestationDocument", err, "ValidationException", 400)

	// The option for tests accepts the unsigned document.
	u := recipientEnv(t, nitro.Verifier{AcceptUnsignedForTests: true}).admin()
	r = must[*kms.GenerateRandomOutput](t, "GenerateRandom, unsigned accepted for tests")(u.GenerateRandom(ctx(), &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(16),
		Recipient: rcpt(nitrotest.Unsigned(enc.spki))}))
	if len(enc.open(t, r.CiphertextForRecipient)) != 16 {
		t.Fatal("GenerateRandom with an unsigned document under AcceptUnsignedForTests")
	}
}
