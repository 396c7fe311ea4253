package nitro_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/p11kms/p11kms/internal/nitrotest"
	"github.com/p11kms/p11kms/wrap/nitro"
)

func rsaSPKI(t *testing.T) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return der
}

// TestVerify: a document signed by a certificate chaining to the roots
// verifies and yields its public key; a tampered payload, other roots, no
// roots, and an unsigned document without the test option are refused.
func TestVerify(t *testing.T) {
	ca, other := nitrotest.NewCA(t), nitrotest.NewCA(t)
	pub := rsaSPKI(t)
	d, err := nitro.Verifier{Roots: ca.Roots}.Verify(ca.Signed(t, pub))
	if err != nil || !d.Signed || !bytes.Equal(d.PublicKey, pub) || d.Digest != "SHA384" || d.ModuleID == "" || len(d.PCRs[0]) != 48 {
		t.Fatalf("signed document: %+v, %v", d, err)
	}
	for name, cs := range map[string]struct {
		v   nitro.Verifier
		doc []byte
	}{
		"tampered payload":    {nitro.Verifier{Roots: ca.Roots}, ca.Resigned(t, pub, rsaSPKI(t))},
		"another root":        {nitro.Verifier{Roots: other.Roots}, ca.Signed(t, pub)},
		"no roots":            {nitro.Verifier{}, ca.Signed(t, pub)},
		"unsigned":            {nitro.Verifier{Roots: ca.Roots}, nitrotest.Unsigned(pub)},
		"empty":               {nitro.Verifier{AcceptUnsignedForTests: true}, nil},
		"not CBOR":            {nitro.Verifier{AcceptUnsignedForTests: true}, []byte("{json}")},
		"no public key":       {nitro.Verifier{AcceptUnsignedForTests: true}, nitrotest.Unsigned(nil)},
		"trailing bytes":      {nitro.Verifier{AcceptUnsignedForTests: true}, append(nitrotest.Unsigned(pub), 0)},
		"signature truncated": {nitro.Verifier{Roots: ca.Roots}, ca.Signed(t, pub)[:100]},
	} {
		if _, err := cs.v.Verify(cs.doc); !errors.Is(err, nitro.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	d, err = nitro.Verifier{AcceptUnsignedForTests: true}.Verify(nitrotest.Unsigned(pub))
	if err != nil || d.Signed || !bytes.Equal(d.PublicKey, pub) {
		t.Fatalf("unsigned under AcceptUnsignedForTests: %+v, %v", d, err)
	}
}

// FuzzVerify: the parser never panics, and accepts nothing without a
// public key.
func FuzzVerify(f *testing.F) {
	f.Add(nitrotest.Unsigned([]byte("key")))
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	f.Add([]byte{0x9f, 0xff})
	f.Fuzz(func(t *testing.T, doc []byte) {
		d, err := nitro.Verifier{AcceptUnsignedForTests: true}.Verify(doc)
		if err == nil && (len(d.PublicKey) == 0 || d.Signed) {
			t.Fatalf("accepted %x as %+v", doc, d)
		}
	})
}
