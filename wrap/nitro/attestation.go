// Package nitro reads and verifies AWS Nitro Enclaves attestation
// documents, the AttestationDocument of AWS KMS's Recipient: a COSE_Sign1
// (RFC 9052) signed with ES384 by a certificate that chains, through the
// document's cabundle, to roots the operator configures; its payload
// (CBOR) carries the enclave's public_key. Pure Go (crypto/ecdsa,
// crypto/x509 and a minimal CBOR reader, cbor.go); no state.
package nitro

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// MaxDocumentBytes bounds an attestation document (AWS's limit is 16 KiB
// of base64 in a request; real documents are about 4.5 KiB).
const MaxDocumentBytes = 16 << 10

// coseES384 is COSE's algorithm identifier of ECDSA P-384 with SHA-384.
const coseES384 = -35

// Document is a verified attestation document's payload.
type Document struct {
	ModuleID  string
	Digest    string
	Timestamp time.Time
	PCRs      map[uint64][]byte
	PublicKey []byte // the enclave's key (DER SubjectPublicKeyInfo for KMS)
	UserData  []byte
	Nonce     []byte
	// Signed is false only for a document accepted unsigned under
	// Verifier.AcceptUnsignedForTests.
	Signed bool
}

// Verifier checks attestation documents.
type Verifier struct {
	// Roots are the operator's trusted roots (the AWS Nitro Enclaves root
	// in production); a signed document must chain to one of them.
	Roots *x509.CertPool
	// AcceptUnsignedForTests accepts a document whose signature is empty
	// (and whose certificate is not checked): FOR TESTS ONLY, never in
	// production, as anyone can then name any public key.
	AcceptUnsignedForTests bool
	// Now is the clock certificates are checked against (default time.Now).
	Now func() time.Time
}

// ErrInvalid is wrapped by every refusal.
var ErrInvalid = errors.New("invalid attestation document")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Verify parses doc, checks its signature and certificate chain (or, with
// AcceptUnsignedForTests, accepts it unsigned) and returns its payload,
// which must carry a public_key.
func (v Verifier) Verify(doc []byte) (*Document, error) {
	if len(doc) == 0 || len(doc) > MaxDocumentBytes {
		return nil, invalid("%d bytes: accepted 1 to %d", len(doc), MaxDocumentBytes)
	}
	top, err := decodeCBOR(doc)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if top.major == majorTag && top.n == 18 && top.tag != nil { // COSE_Sign1 tag
		top = *top.tag
	}
	if top.major != majorArray || len(top.items) != 4 || top.items[0].major != majorBytes || top.items[2].major != majorBytes || top.items[3].major != majorBytes {
		return nil, invalid("not a COSE_Sign1 [protected, unprotected, payload, signature]")
	}
	protected, payload, sig := top.items[0].bytes, top.items[2].bytes, top.items[3].bytes
	d, cert, bundle, err := parsePayload(payload)
	if err != nil {
		return nil, err
	}
	if len(sig) == 0 {
		if !v.AcceptUnsignedForTests {
			return nil, invalid("the document is unsigned")
		}
		return d, nil
	}
	if err := v.checkSignature(protected, payload, sig, cert, bundle); err != nil {
		return nil, err
	}
	d.Signed = true
	return d, nil
}

// checkSignature checks the ES384 signature by cert and cert's chain to
// the roots through bundle.
func (v Verifier) checkSignature(protected, payload, sig, certDER []byte, bundle [][]byte) error {
	if v.Roots == nil {
		return invalid("no attestation roots are configured: a signed document cannot be checked")
	}
	hdr, err := decodeCBOR(protected)
	if err != nil || hdr.major != majorMap || len(hdr.items) != 2 || hdr.items[0].major != majorUint || hdr.items[0].n != 1 ||
		hdr.items[1].major != majorNegint || -1-int64(hdr.items[1].n) != coseES384 {
		return invalid("the protected header must be {1: -35} (ES384)")
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return invalid("certificate: %v", err)
	}
	inter := x509.NewCertPool()
	for i, b := range bundle {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return invalid("cabundle[%d]: %v", i, err)
		}
		inter.AddCert(c)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: v.Roots, Intermediates: inter, CurrentTime: now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return invalid("the certificate does not chain to a configured root: %v", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() || len(sig) != 96 {
		return invalid("the signature must be ES384 (P-384, 96 bytes) by the certificate's key")
	}
	h := sha512.Sum384(SigStructure(protected, payload))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
		return invalid("the signature does not verify")
	}
	return nil
}

// parsePayload reads the payload map.
func parsePayload(payload []byte) (d *Document, cert []byte, bundle [][]byte, err error) {
	p, err := decodeCBOR(payload)
	if err != nil || p.major != majorMap {
		return nil, nil, nil, invalid("the payload is not a CBOR map")
	}
	d = &Document{PCRs: map[uint64][]byte{}}
	text := func(name string) string {
		f, _ := p.field(name)
		return string(f.bytes)
	}
	bytesOf := func(name string) []byte {
		f, ok := p.field(name)
		if !ok || f.major != majorBytes {
			return nil
		}
		return f.bytes
	}
	d.ModuleID, d.Digest = text("module_id"), text("digest")
	d.PublicKey, d.UserData, d.Nonce, cert = bytesOf("public_key"), bytesOf("user_data"), bytesOf("nonce"), bytesOf("certificate")
	if ts, ok := p.field("timestamp"); ok && ts.major == majorUint && ts.n < 1<<53 {
		d.Timestamp = time.UnixMilli(int64(ts.n)).UTC()
	}
	if pcrs, ok := p.field("pcrs"); ok && pcrs.major == majorMap {
		for i := 0; i+1 < len(pcrs.items); i += 2 {
			d.PCRs[pcrs.items[i].n] = pcrs.items[i+1].bytes
		}
	}
	if cab, ok := p.field("cabundle"); ok && cab.major == majorArray {
		for _, c := range cab.items {
			bundle = append(bundle, c.bytes)
		}
	}
	if d.Digest != "SHA384" {
		return nil, nil, nil, invalid("digest %q: accepted SHA384", d.Digest)
	}
	if len(d.PublicKey) == 0 {
		return nil, nil, nil, invalid("the document carries no public_key")
	}
	return d, cert, bundle, nil
}
