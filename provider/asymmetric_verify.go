package provider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"

	"github.com/p11kms/p11kms/hsm"
)

// verifyKey is a version's public key parsed for verifying in Go: an
// *rsa.PublicKey, or an *ecdsa.PublicKey on P-256 (its point checked by
// x509's parser). ok is false for a spec Go cannot verify (secp256k1:
// neither the standard library nor gmsm has the curve).
func (s *Service) verifyKey(ctx context.Context, k *asymKey) (pub crypto.PublicKey, ok bool, err error) {
	switch {
	case k.spec.bits != 0:
		pub, err = s.tok.PublicKey(ctx, k.pair.Public)
	case k.spec.curve == hsm.CurveP256:
		var der []byte
		if der, err = s.publicKeyDER(ctx, k); err == nil {
			pub, err = x509.ParsePKIXPublicKey(der)
		}
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, false, Internal("reading the public key", err)
	}
	return pub, true, nil
}

// verifyInGo checks a signature over a SHA-256 digest with a public key:
// RSASSA-PSS (salt of the digest's length, as the token signs), RSASSA-
// PKCS1-v1_5, or ECDSA with a DER signature. A signature that is malformed
// or does not verify is false.
func verifyInGo(pub crypto.PublicKey, alg string, digest, sig []byte) bool {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case AlgRSAPSSSHA256:
			return rsa.VerifyPSS(p, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		case AlgRSAPKCS1SHA256:
			return rsa.VerifyPKCS1v15(p, crypto.SHA256, digest, sig) == nil
		}
	case *ecdsa.PublicKey:
		return alg == AlgECDSASHA256 && ecdsa.VerifyASN1(p, digest, sig)
	}
	return false
}

// verifySignature checks sig over digest with the version's public key:
// in Go where Go has the algorithm (RSA, P-256), else with the public key
// in the token (secp256k1; C_Verify is public-key work too).
func (s *Service) verifySignature(ctx context.Context, k *asymKey, alg string, digest, sig []byte) (bool, error) {
	pub, inGo, err := s.verifyKey(ctx, k)
	if err != nil {
		return false, err
	}
	if inGo {
		return verifyInGo(pub, alg, digest, sig), nil
	}
	return s.verifyInToken(ctx, k, alg, digest, sig)
}

// verifyInToken checks the signature with the version's public key in the
// token.
func (s *Service) verifyInToken(ctx context.Context, k *asymKey, alg string, digest, sig []byte) (bool, error) {
	err := s.tok.VerifyDigest(ctx, k.pair.Public, signScheme(alg), k.spec.curve, digest, sig)
	if err != nil && !errors.Is(err, hsm.ErrBadSignature) {
		return false, Internal("verifying in the token", err)
	}
	return err == nil, nil
}
