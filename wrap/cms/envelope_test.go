package cms_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/p11kms/p11kms/wrap/cms"
)

// TestOpenSSLDecrypts: `openssl cms -decrypt` opens the envelope with the
// recipient's private key, for every RSA size and plaintexts of every
// padding length.
func TestOpenSSLDecrypts(t *testing.T) {
	dir := t.TempDir()
	for _, bits := range []int{2048, 3072} {
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		keyFile := filepath.Join(dir, "key.pem")
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		pub, err := cms.RecipientKey(spki)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 15, 16, 17, 32, 1024} {
			pt := make([]byte, n)
			rand.Read(pt)
			env, err := cms.Envelope(pub, pt)
			if err != nil {
				t.Fatal(err)
			}
			envFile := filepath.Join(dir, "env.der")
			os.WriteFile(envFile, env, 0o600)
			out, err := exec.Command("openssl", "cms", "-decrypt", "-inform", "DER", "-in", envFile, "-inkey", keyFile, "-binary").Output()
			if err != nil {
				t.Fatalf("openssl cms -decrypt (RSA %d, %d bytes): %v", bits, n, err)
			}
			if !bytes.Equal(out, pt) {
				t.Fatalf("RSA %d, %d bytes: openssl got %x", bits, n, out)
			}
		}
	}
}

// TestRecipientKeyRefusals: a key that is not RSA, too small, or not DER.
func TestRecipientKeyRefusals(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	for name, b := range map[string][]byte{"RSA-1024": der, "garbage": []byte("not a key")} {
		if _, err := cms.RecipientKey(b); err == nil {
			t.Fatalf("%s accepted", name)
		}
	}
	if _, err := cms.Envelope(&small.PublicKey, []byte("x")); err == nil {
		t.Fatal("Envelope to RSA-1024 accepted")
	}
}
