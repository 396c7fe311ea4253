package wrap_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/p11kms/p11kms/wrap"
)

// TestDecryptOAEPSplit: with the raw RSA step done by a callback (as the
// token does it), OAEP-SHA-256 decrypts; a changed ciphertext is
// ErrDecryption; the callback's own error comes back unchanged.
func TestDecryptOAEPSplit(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(ct []byte) ([]byte, error) {
		m := new(big.Int).Exp(new(big.Int).SetBytes(ct), priv.D, priv.N)
		return m.FillBytes(make([]byte, 256)), nil
	}
	pt := []byte("thirty-two bytes of data key ...")
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wrap.DecryptOAEPSplit(crypto.SHA256, 256, ct, raw)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("got %q, %v", got, err)
	}
	ct[10] ^= 1
	if _, err := wrap.DecryptOAEPSplit(crypto.SHA256, 256, ct, raw); !errors.Is(err, wrap.ErrDecryption) {
		t.Fatalf("changed ciphertext: %v, want ErrDecryption", err)
	}
	boom := errors.New("token fault")
	if _, err := wrap.DecryptOAEPSplit(crypto.SHA256, 256, ct, func([]byte) ([]byte, error) { return nil, boom }); err != boom {
		t.Fatalf("raw's error: %v, want it unchanged", err)
	}
}

// TestDecryptSM2Split: a malformed ciphertext is ErrDecryption before the
// ECDH callback runs; the callback's error comes back unchanged.
func TestDecryptSM2Split(t *testing.T) {
	called := false
	ecdh := func([]byte) ([]byte, error) { called = true; return nil, errors.New("token fault") }
	if _, err := wrap.DecryptSM2Split(make([]byte, 120), wrap.SM2C1C3C2, ecdh); !errors.Is(err, wrap.ErrDecryption) || called {
		t.Fatalf("malformed: %v (ecdh called: %v)", err, called)
	}
}
