package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/p11kms/p11kms/internal/nitrotest"
)

// TestServeAWSRecipient: `p11kms serve --aws-attestation-roots` answers
// the AWS SDK's GenerateDataKey with a Recipient whose document chains to
// the roots file, with an envelope openssl opens; without the flag a
// Recipient is refused.
func TestServeAWSRecipient(t *testing.T) {
	bin := buildBinary(t)
	home := t.TempDir()
	if out, err := exec.Command(bin, "--home", home, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--home", home, "accesskey", "create", "--id-prefix", "AKIA").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ak struct{ AccessKeyId, AccessKeySecret string }
	if err := json.Unmarshal(out, &ak); err != nil {
		t.Fatal(err)
	}
	ca := nitrotest.NewCA(t)
	roots := filepath.Join(t.TempDir(), "roots.pem")
	os.WriteFile(roots, ca.RootPEM(), 0o600)
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "enclave.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	call := func(addr string) (*kms.GenerateDataKeyOutput, error) {
		c := kms.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(ak.AccessKeyId, ak.AccessKeySecret, ""),
			Retryer: func() aws.Retryer { return aws.NopRetryer{} }}, func(o *kms.Options) { o.BaseEndpoint = aws.String("http://" + addr) })
		k, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{})
		if err != nil {
			return nil, err
		}
		return c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: k.KeyMetadata.Arn, NumberOfBytes: aws.Int32(32),
			Recipient: &types.RecipientInfo{KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256, AttestationDocument: ca.Signed(t, spki)}})
	}
	addr := freePort(t)
	srv := startServe(t, bin, home, addr, "--audit-log", "-", "--region", "us-east-1", "--account", "111122223333", "--aws-attestation-roots", roots)
	dk, err := call(addr)
	stopServe(t, srv)
	if err != nil {
		t.Fatalf("GenerateDataKey with Recipient: %v", err)
	}
	env := filepath.Join(t.TempDir(), "env.der")
	os.WriteFile(env, dk.CiphertextForRecipient, 0o600)
	got, err := exec.Command("openssl", "cms", "-decrypt", "-inform", "DER", "-in", env, "-inkey", keyFile, "-binary").Output()
	if err != nil || len(got) != 32 || dk.Plaintext != nil {
		t.Fatalf("openssl cms -decrypt: %d bytes, %v (Plaintext %d bytes)", len(got), err, len(dk.Plaintext))
	}

	addr = freePort(t)
	srv = startServe(t, bin, home, addr, "--audit-log", "-", "--region", "us-east-1", "--account", "111122223333")
	_, err = call(addr)
	stopServe(t, srv)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
		t.Fatalf("Recipient without --aws-attestation-roots: %v", err)
	}
}
