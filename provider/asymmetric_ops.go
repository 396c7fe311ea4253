package provider

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/wrap"
)

// errAsymDecrypt is every failure to decrypt an asymmetric ciphertext: the
// caller cannot tell a bad padding from a wrong key.
var errAsymDecrypt = errors.New("asymmetric decryption failed")

// publicKeyDER is a version's public key as SubjectPublicKeyInfo DER.
func (s *Service) publicKeyDER(ctx context.Context, k *asymKey) ([]byte, error) {
	if k.spec.bits != 0 {
		pub, err := s.tok.PublicKey(ctx, k.pair.Public)
		if err != nil {
			return nil, Internal("reading the public key", err)
		}
		return x509.MarshalPKIXPublicKey(pub)
	}
	ec, err := s.tok.ReadECPublicKey(ctx, k.pair.Public)
	if err != nil {
		return nil, Internal("reading the public key", err)
	}
	return ec.MarshalPKIX()
}

// GetPublicKey returns an asymmetric key version's public key as PEM.
func (s *Service) GetPublicKey(ctx context.Context, req *GetPublicKeyRequest) (*GetPublicKeyResponse, error) {
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	spec, ok := lookupAsymSpec(m.KeySpec)
	if !ok {
		return nil, InvalidParam("KeyId", "the key %s is a symmetric key (%s): only asymmetric keys have a public key", m.KeyId, m.KeySpec)
	}
	if err := s.checkState(ctx, m, s.usableNow); err != nil {
		return nil, err
	}
	vid, err := s.ownVersion(m, req.KeyVersionId)
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		return nil, dryRun()
	}
	k := &asymKey{meta: m, spec: spec, version: vid}
	if err := s.withPair(ctx, k); err != nil {
		return nil, err
	}
	der, err := s.publicKeyDER(ctx, k)
	if err != nil {
		return nil, err
	}
	return &GetPublicKeyResponse{KeyId: m.KeyId, KeyVersionId: vid.String(),
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), RequestId: RequestID(ctx)}, nil
}

// AsymmetricEncrypt encrypts a short plaintext under the version's public
// key (an operation on public data: done here, not in the token).
func (s *Service) AsymmetricEncrypt(ctx context.Context, req *AsymmetricEncryptRequest) (*AsymmetricEncryptResponse, error) {
	k, err := s.asymVersion(ctx, req.KeyId, req.KeyVersionId, KeyUsageEncrypt, req.Algorithm)
	if err != nil {
		return nil, err
	}
	pt, err := s.decodePlaintext(req.Plaintext)
	if err != nil {
		return nil, err
	}
	defer s.plain.put(pt)
	alg, err := wrap.LookupAlgorithm(req.Algorithm)
	if err != nil {
		return nil, FromWrap(err)
	}
	if err := s.withPair(ctx, k); err != nil {
		return nil, err
	}
	pub, err := s.tok.PublicKey(ctx, k.pair.Public)
	if err != nil {
		return nil, Internal("reading the public key", err)
	}
	if max := alg.MaxPlaintext(pub); len(pt) > max {
		return nil, InvalidParam("Plaintext", "%d bytes: %s with a %s key carries 1 to %d bytes", len(pt), alg.Name, k.spec.name, max)
	}
	if req.DryRun {
		return nil, dryRun()
	}
	ct, err := alg.Encrypt(nil, pub, pt)
	if err != nil {
		return nil, FromWrap(err)
	}
	return &AsymmetricEncryptResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(),
		CiphertextBlob: base64.StdEncoding.EncodeToString(ct), RequestId: RequestID(ctx)}, nil
}

// AsymmetricDecrypt decrypts with the version's private key in the token
// (see decryptInToken).
func (s *Service) AsymmetricDecrypt(ctx context.Context, req *AsymmetricDecryptRequest) (*AsymmetricDecryptResponse, error) {
	k, err := s.asymVersion(ctx, req.KeyId, req.KeyVersionId, KeyUsageEncrypt, req.Algorithm)
	if err != nil {
		return nil, err
	}
	ct, err := decodeB64("Ciphertext", req.Ciphertext, 4096)
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		return nil, dryRun()
	}
	if err := s.withPair(ctx, k); err != nil {
		return nil, err
	}
	pt, err := s.decryptInToken(ctx, k.pair, k.spec.bits, req.Algorithm, ct)
	if errors.Is(err, errAsymDecrypt) {
		e := NewError(CodeInvalidCiphertext, "the Ciphertext does not decrypt with %s under version %s of the key %s", req.Algorithm, k.version, k.meta.KeyId)
		e.Err = err
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	defer s.plain.put(pt)
	return &AsymmetricDecryptResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(),
		Plaintext: base64.StdEncoding.EncodeToString(pt), RequestId: RequestID(ctx)}, nil
}

// decryptInToken decrypts ct with the private half of kp (RSA of bits
// bits, or SM2 when bits is 0) by the algorithm, along the paths the
// importer proved: RSA-OAEP in the token (C_Decrypt), or where the token
// refuses the OAEP hash, raw RSA (CKM_RSA_X_509) in the token and OAEP
// decoded here in constant time; SM2 as ECDH in the token (x2 = x([d]C1))
// finished here with C3 checked in constant time. The plaintext is in a
// pool buffer the caller puts back; every intermediate is zeroed. Every
// failure to decrypt is errAsymDecrypt.
func (s *Service) decryptInToken(ctx context.Context, kp hsm.KeyPair, bits int, algName string, ct []byte) ([]byte, error) {
	alg, err := wrap.LookupAlgorithm(algName)
	if err != nil {
		return nil, FromWrap(err)
	}
	if alg.Kind == wrap.KindSM2 {
		pt, err := wrap.DecryptSM2Split(ct, alg.SM2Encoding, func(c1 []byte) ([]byte, error) {
			return s.tok.DeriveECDH1(ctx, kp.Private, c1, 32)
		})
		if errors.Is(err, wrap.ErrDecryption) {
			return nil, errAsymDecrypt
		}
		if err != nil {
			return nil, Internal("deriving the SM2 shared point", err)
		}
		return s.plain.fill(pt), nil
	}
	if len(ct) != bits/8 {
		return nil, errAsymDecrypt
	}
	if alg.Kind == wrap.KindRSAPKCS1 { // key import only (see wrap.AlgRSAPKCS1v15)
		pt, err := s.tok.DecryptRSA(ctx, kp.Private, hsm.RSAMechanism{Kind: hsm.RSAPKCS1v15}, ct)
		if err != nil {
			return nil, errAsymDecrypt // one answer for every failure, whatever the token said
		}
		return s.plain.fill(pt), nil
	}
	mech := hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: alg.Hash}
	inToken, err := s.tok.SupportsRSA(ctx, kp, mech)
	if err != nil {
		return nil, Internal("probing the token's RSA mechanisms", err)
	}
	if inToken {
		pt, err := s.tok.DecryptRSA(ctx, kp.Private, mech, ct)
		if err == nil {
			return s.plain.fill(pt), nil
		}
		if errors.Is(err, hsm.ErrDecryption) {
			return nil, errAsymDecrypt
		}
		if !errors.Is(err, hsm.ErrMechanismUnsupported) {
			return nil, Internal("decrypting in the token", err)
		}
	}
	return s.rawOAEP(ctx, kp, alg.Hash, bits/8, ct)
}

// rawOAEP is RSA-OAEP for a token that refuses the hash: CKM_RSA_X_509 in
// the token, the OAEP decoding here in constant time.
func (s *Service) rawOAEP(ctx context.Context, kp hsm.KeyPair, h crypto.Hash, k int, ct []byte) ([]byte, error) {
	pt, err := wrap.DecryptOAEPSplit(h, k, ct, func(ct []byte) ([]byte, error) {
		return s.tok.DecryptRSA(ctx, kp.Private, hsm.RSAMechanism{Kind: hsm.RSARaw}, ct)
	})
	if errors.Is(err, wrap.ErrDecryption) || errors.Is(err, hsm.ErrDecryption) {
		return nil, errAsymDecrypt
	}
	if err != nil {
		return nil, Internal("decrypting in the token", err)
	}
	return s.plain.fill(pt), nil
}

// signScheme is the token scheme of a signing algorithm.
func signScheme(alg string) hsm.SignScheme {
	switch alg {
	case AlgRSAPSSSHA256:
		return hsm.SignRSAPSS
	case AlgRSAPKCS1SHA256:
		return hsm.SignRSAPKCS1
	}
	return hsm.SignECDSA
}

// decodeDigest decodes a base64 SHA-256 digest (32 bytes).
func decodeDigest(b64, alg string) ([]byte, error) {
	d, err := decodeB64("Digest", b64, 64)
	if err != nil {
		return nil, err
	}
	if len(d) != hsm.DigestSize {
		return nil, InvalidParam("Digest", "%d bytes: %s signs a SHA-256 digest of %d bytes", len(d), alg, hsm.DigestSize)
	}
	return d, nil
}

// AsymmetricSign signs a SHA-256 digest with the version's private key in
// the token.
func (s *Service) AsymmetricSign(ctx context.Context, req *AsymmetricSignRequest) (*AsymmetricSignResponse, error) {
	k, err := s.asymVersion(ctx, req.KeyId, req.KeyVersionId, KeyUsageSign, req.Algorithm)
	if err != nil {
		return nil, err
	}
	d, err := decodeDigest(req.Digest, req.Algorithm)
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		return nil, dryRun()
	}
	if err := s.withPair(ctx, k); err != nil {
		return nil, err
	}
	sig, err := s.tok.SignDigest(ctx, k.pair.Private, signScheme(req.Algorithm), k.spec.curve, d)
	if err != nil {
		return nil, Internal("signing in the token", err)
	}
	return &AsymmetricSignResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(),
		Value: base64.StdEncoding.EncodeToString(sig), RequestId: RequestID(ctx)}, nil
}

// AsymmetricVerify checks a signature over a SHA-256 digest with the
// version's public key, in Go (verifySignature: the private half is not
// needed). A signature that does not verify, or is malformed, is Value
// false.
func (s *Service) AsymmetricVerify(ctx context.Context, req *AsymmetricVerifyRequest) (*AsymmetricVerifyResponse, error) {
	k, err := s.asymVersion(ctx, req.KeyId, req.KeyVersionId, KeyUsageSign, req.Algorithm)
	if err != nil {
		return nil, err
	}
	d, err := decodeDigest(req.Digest, req.Algorithm)
	if err != nil {
		return nil, err
	}
	sig, err := decodeB64("Signature", req.Signature, 2048)
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		return nil, dryRun()
	}
	if err := s.withPair(ctx, k); err != nil {
		return nil, err
	}
	good, err := s.verifySignature(ctx, k, req.Algorithm, d, sig)
	if err != nil {
		return nil, err
	}
	return &AsymmetricVerifyResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(), Value: good, RequestId: RequestID(ctx)}, nil
}

// decodeB64 decodes a required base64 parameter of at most maxBytes bytes.
func decodeB64(param, b64 string, maxBytes int) ([]byte, error) {
	if b64 == "" {
		return nil, InvalidParam(param, "is required (base64)")
	}
	if base64.StdEncoding.DecodedLen(len(b64)) > maxBytes+2 {
		return nil, InvalidParam(param, "%d base64 characters: at most %d bytes accepted", len(b64), maxBytes)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, InvalidParam(param, "is not valid base64")
	}
	if len(b) > maxBytes {
		return nil, InvalidParam(param, "%d bytes: at most %d accepted", len(b), maxBytes)
	}
	return b, nil
}
