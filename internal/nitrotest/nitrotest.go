// Package nitrotest makes Nitro Enclaves attestation documents for tests:
// a P-384 root and leaf certificate made here, a COSE_Sign1 signed ES384
// by the leaf over a payload naming a public key, and the unsigned form
// that only nitro.Verifier.AcceptUnsignedForTests accepts. Not for
// production use.
package nitrotest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/p11kms/p11kms/wrap/nitro"
)

// CA is a root and a leaf certificate (with its key) that signs documents.
type CA struct {
	Roots   *x509.CertPool
	rootDER []byte
	leafDER []byte
	leaf    *ecdsa.PrivateKey
}

// NewCA makes a root and a leaf certificate, valid for an hour.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	now := time.Now()
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "p11kms test nitro root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		tb.Fatal(err)
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "p11kms test enclave"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, rootCert, &leafKey.PublicKey, rootKey)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(rootCert)
	return &CA{Roots: pool, rootDER: rootDER, leafDER: leafDER, leaf: leafKey}
}

// RootPEM is the root certificate in PEM, for a roots file.
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.rootDER})
}

// Signed is a document naming publicKey (DER SPKI), signed by the leaf.
func (ca *CA) Signed(tb testing.TB, publicKey []byte) []byte {
	tb.Helper()
	protected := appendMap(nil, 1)
	protected = appendHead(protected, 0, 1)
	protected = appendHead(protected, 1, 34) // -35: ES384
	payload := Payload(publicKey, ca.leafDER, [][]byte{ca.rootDER})
	h := sha512.Sum384(nitro.SigStructure(protected, payload))
	r, s, err := ecdsa.Sign(rand.Reader, ca.leaf, h[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 96)
	r.FillBytes(sig[:48])
	s.FillBytes(sig[48:])
	return sign1(protected, payload, sig)
}

// Unsigned is a document naming publicKey with an empty signature.
func Unsigned(publicKey []byte) []byte {
	return sign1(appendMap(nil, 0), Payload(publicKey, nil, nil), nil)
}

// Resigned is doc's COSE_Sign1 with another payload and the old signature
// (a tampered document).
func (ca *CA) Resigned(tb testing.TB, publicKey, otherKey []byte) []byte {
	tb.Helper()
	doc := ca.Signed(tb, publicKey)
	sig := doc[len(doc)-96:]
	protected := appendHead(appendMap(nil, 1), 0, 1)
	protected = appendHead(protected, 1, 34)
	return sign1(protected, Payload(otherKey, ca.leafDER, [][]byte{ca.rootDER}), sig)
}

// Payload is an attestation payload map.
func Payload(publicKey, cert []byte, bundle [][]byte) []byte {
	b := appendMap(nil, 8)
	b = appendText(b, "module_id")
	b = appendText(b, "i-p11kms-test-enc0123456789abcdef")
	b = appendText(b, "digest")
	b = appendText(b, "SHA384")
	b = appendText(b, "timestamp")
	b = appendHead(b, 0, uint64(time.Now().UnixMilli()))
	b = appendText(b, "pcrs")
	b = appendMap(b, 1)
	b = appendHead(b, 0, 0)
	b = appendBytes(b, make([]byte, 48))
	b = appendText(b, "certificate")
	b = appendBytes(b, cert)
	b = appendText(b, "cabundle")
	b = appendHead(b, 4, uint64(len(bundle)))
	for _, c := range bundle {
		b = appendBytes(b, c)
	}
	b = appendText(b, "public_key")
	b = appendBytes(b, publicKey)
	b = appendText(b, "nonce")
	return append(b, 0xf6) // null
}

func sign1(protected, payload, sig []byte) []byte {
	b := appendHead(nil, 6, 18) // COSE_Sign1 tag
	b = appendHead(b, 4, 4)
	b = appendBytes(b, protected)
	b = appendMap(b, 0)
	b = appendBytes(b, payload)
	return appendBytes(b, sig)
}

func appendMap(b []byte, n uint64) []byte { return appendHead(b, 5, n) }
func appendText(b []byte, s string) []byte {
	return append(appendHead(b, 3, uint64(len(s))), s...)
}
func appendBytes(b, v []byte) []byte { return append(appendHead(b, 2, uint64(len(v))), v...) }

var appendHead = nitro.AppendHead
