package tencent

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// Tencent's asymmetric KeyUsage values and the core key spec and usage
// each is (ASYMMETRIC_SIGN_VERIFY_SM2 is refused by the core:
// UnsupportedOperation naming the missing SM2 signature mechanism).
var asymmetricKeys = map[string][2]string{
	"ASYMMETRIC_DECRYPT_RSA_2048":     {provider.KeySpecRSA2048, provider.KeyUsageEncrypt},
	"ASYMMETRIC_DECRYPT_SM2":          {provider.KeySpecECSM2, provider.KeyUsageEncrypt},
	"ASYMMETRIC_SIGN_VERIFY_RSA_2048": {provider.KeySpecRSA2048, provider.KeyUsageSign},
	"ASYMMETRIC_SIGN_VERIFY_ECC":      {provider.KeySpecECP256, provider.KeyUsageSign},
	"ASYMMETRIC_SIGN_VERIFY_SM2":      {provider.KeySpecECSM2, provider.KeyUsageSign},
}

// tencentUsage is a core key's Tencent KeyUsage.
func tencentUsage(spec, usage string) string {
	for name, k := range asymmetricKeys {
		if k[0] == spec && k[1] == usage {
			return name
		}
	}
	return keyUsageSymmetric
}

// Tencent's signature algorithms and the core's.
var signAlgorithms = map[string]string{
	"RSA_PSS_SHA_256":   provider.AlgRSAPSSSHA256,
	"RSA_PKCS1_SHA_256": provider.AlgRSAPKCS1SHA256,
	"ECC":               provider.AlgECDSASHA256,
	"SM2DSA":            provider.AlgSM2DSA,
}

// maxRawMessage is the longest RAW message Sign/VerifyByAsymmetricKey take.
const maxRawMessage = 4096

func init() {
	for name, a := range map[string]wire.Action{
		"GetPublicKey":          onKey(getPublicKey),
		"AsymmetricRsaDecrypt":  row(asymmetricRsaDecrypt, func(r *asymDecryptRequest) []wire.Touched { return key(&r.KeyId) }),
		"AsymmetricSm2Decrypt":  row(asymmetricSm2Decrypt, func(r *asymDecryptRequest) []wire.Touched { return key(&r.KeyId) }),
		"SignByAsymmetricKey":   row(signByAsymmetricKey, func(r *signRequest) []wire.Touched { return key(&r.KeyId) }),
		"VerifyByAsymmetricKey": row(verifyByAsymmetricKey, func(r *signRequest) []wire.Touched { return key(&r.KeyId) }),
		"ListAlgorithms":        row(listAlgorithms, nil),
	} {
		a.Name = name
		actions[name] = &a
	}
}

// primaryVersion is the version Tencent's version-less asymmetric actions use.
func primaryVersion(c *wire.Call, ref string) (keyID, version string, err error) {
	d, err := c.KMS.DescribeKey(c.Ctx, &provider.KeyIdRequest{KeyId: ref})
	if err != nil {
		return "", "", err
	}
	c.SetKey(d.KeyMetadata.KeyId, d.KeyMetadata.PrimaryKeyVersion)
	return d.KeyMetadata.KeyId, d.KeyMetadata.PrimaryKeyVersion, nil
}

func getPublicKey(c *wire.Call, ref string) (any, error) {
	id, ver, err := primaryVersion(c, ref)
	if err != nil {
		return nil, err
	}
	r, err := c.KMS.GetPublicKey(c.Ctx, &provider.GetPublicKeyRequest{KeyId: id, KeyVersionId: ver})
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode([]byte(r.PublicKey))
	if b == nil {
		return nil, provider.Internal("encoding the public key", nil)
	}
	// PublicKey is base64 DER SubjectPublicKeyInfo.
	return object{"KeyId": id, "PublicKey": base64.StdEncoding.EncodeToString(b.Bytes), "PublicKeyPem": r.PublicKey}, nil
}

type asymDecryptRequest struct {
	KeyId      string `wire:"required"`
	Ciphertext string `wire:"required"`
	Algorithm  string // AsymmetricRsaDecrypt only
}

func asymDecrypt(c *wire.Call, ref, alg, ct string) (any, error) {
	id, ver, err := primaryVersion(c, ref)
	if err != nil {
		return nil, err
	}
	r, err := c.KMS.AsymmetricDecrypt(c.Ctx, &provider.AsymmetricDecryptRequest{KeyId: id, KeyVersionId: ver, Algorithm: alg, Ciphertext: ct})
	if err != nil {
		return nil, err
	}
	return object{"KeyId": id, "Plaintext": r.Plaintext}, nil
}

// asymmetricRsaDecrypt: RSAES_PKCS1_V1_5 is refused (a padding oracle
// over the wire; see wrap.AlgRSAPKCS1v15).
func asymmetricRsaDecrypt(c *wire.Call, req *asymDecryptRequest) (any, error) {
	switch req.Algorithm {
	case provider.AlgRSAOAEPSHA1, provider.AlgRSAOAEPSHA256:
	case string(wrap.AlgRSAPKCS1v15):
		return nil, errorf(CodeUnsupportedOperation, "Algorithm RSAES_PKCS1_V1_5: p11kms decrypts RSA only with RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256")
	default:
		return nil, errorf(CodeInvalidParameterVal, "Algorithm %q: accepted RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256", provider.Clip(req.Algorithm, 32))
	}
	return asymDecrypt(c, req.KeyId, req.Algorithm, req.Ciphertext)
}

// asymmetricSm2Decrypt takes Tencent's C1C3C2 ASN.1 (GM/T 0009) and hands
// the core the same ciphertext as C1‖C3‖C2.
func asymmetricSm2Decrypt(c *wire.Call, req *asymDecryptRequest) (any, error) {
	raw, err := base64.StdEncoding.DecodeString(req.Ciphertext)
	if err != nil || len(raw) > maxRawMessage+256 {
		return nil, errorf(CodeInvalidCiphertextCode, "Ciphertext: accepted base64 of an SM2 ciphertext in C1C3C2 ASN.1 (GM/T 0009)")
	}
	ct, err := wrap.ParseSM2Ciphertext(raw, wrap.SM2ASN1)
	if err != nil {
		return nil, errorf(CodeInvalidCiphertextCode, "Ciphertext: not an SM2 ciphertext in C1C3C2 ASN.1 (GM/T 0009)")
	}
	b, err := ct.Marshal(wrap.SM2C1C3C2)
	if err != nil {
		return nil, errorf(CodeInvalidCiphertextCode, "Ciphertext: not an SM2 ciphertext in C1C3C2 ASN.1 (GM/T 0009)")
	}
	return asymDecrypt(c, req.KeyId, provider.AlgSM2PKE, base64.StdEncoding.EncodeToString(b))
}

// signRequest is SignByAsymmetricKey's and VerifyByAsymmetricKey's.
type signRequest struct {
	KeyId          string `wire:"required"`
	Algorithm      string `wire:"required"`
	Message        string `wire:"required"`
	MessageType    string
	SignatureValue string // VerifyByAsymmetricKey

	alg, digest string // the core's algorithm and the base64 digest
}

// check maps the algorithm and makes the digest: a RAW message (the
// default, at most 4096 bytes) is hashed with SHA-256 here; a DIGEST is
// passed on (the core checks its size).
func (r *signRequest) check() error {
	alg, ok := signAlgorithms[r.Algorithm]
	if !ok {
		return errorf(CodeInvalidParameterVal, "Algorithm %q: accepted RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECC, SM2DSA", provider.Clip(r.Algorithm, 32))
	}
	r.alg = alg
	msg, err := base64.StdEncoding.DecodeString(r.Message)
	if err != nil {
		return errorf(CodeInvalidParameterVal, "Message: not valid base64")
	}
	switch r.MessageType {
	case "", "RAW":
		if len(msg) > maxRawMessage {
			return errorf(CodeInvalidParameterVal, "Message: %d bytes: a RAW message is at most %d bytes (send a DIGEST for more)", len(msg), maxRawMessage)
		}
		d := sha256.Sum256(msg)
		r.digest = base64.StdEncoding.EncodeToString(d[:])
	case "DIGEST":
		r.digest = r.Message
	default:
		return errorf(CodeInvalidParameterVal, "MessageType %q: accepted RAW (default), DIGEST", provider.Clip(r.MessageType, 16))
	}
	return nil
}

func signByAsymmetricKey(c *wire.Call, req *signRequest) (any, error) {
	id, ver, err := primaryVersion(c, req.KeyId)
	if err != nil {
		return nil, err
	}
	r, err := c.KMS.AsymmetricSign(c.Ctx, &provider.AsymmetricSignRequest{KeyId: id, KeyVersionId: ver, Algorithm: req.alg, Digest: req.digest})
	if err != nil {
		return nil, provider.RenameParams(err, map[string]string{"Digest": "Message"})
	}
	return object{"Signature": r.Value}, nil
}

func verifyByAsymmetricKey(c *wire.Call, req *signRequest) (any, error) {
	if req.SignatureValue == "" {
		return nil, errorf(CodeMissingParameter, "the parameter SignatureValue is required")
	}
	id, ver, err := primaryVersion(c, req.KeyId)
	if err != nil {
		return nil, err
	}
	r, err := c.KMS.AsymmetricVerify(c.Ctx, &provider.AsymmetricVerifyRequest{KeyId: id, KeyVersionId: ver, Algorithm: req.alg,
		Digest: req.digest, Signature: req.SignatureValue})
	if err != nil {
		return nil, provider.RenameParams(err, map[string]string{"Signature": "SignatureValue", "Digest": "Message"})
	}
	return object{"SignatureValid": r.Value}, nil
}

// listAlgorithms lists what p11kms's token can do (no SM4, no SM2DSA).
func listAlgorithms(*wire.Call, *emptyRequest) (any, error) {
	alg := func(usage, name string) object { return object{"KeyUsage": usage, "Algorithm": name} }
	return object{
		"SymmetricAlgorithms":            []object{alg(keyUsageSymmetric, "AES_256")},
		"AsymmetricAlgorithms":           []object{alg("ASYMMETRIC_DECRYPT_RSA_2048", "RSA_2048"), alg("ASYMMETRIC_DECRYPT_SM2", "SM2")},
		"AsymmetricSignVerifyAlgorithms": []object{alg("ASYMMETRIC_SIGN_VERIFY_RSA_2048", "RSA_2048"), alg("ASYMMETRIC_SIGN_VERIFY_ECC", "ECC")},
	}, nil
}
