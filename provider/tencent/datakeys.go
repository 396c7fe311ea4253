package tencent

import (
	"encoding/base64"
	"math"
	"slices"
	"strings"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// The data-key, encryption, random and status actions, each called by the
// pipeline once it authorized the request (types.go validated it).

// exportAlgorithms are the EncryptionAlgorithm values Tencent accepts.
var exportAlgorithms = []string{"SM2", "SM2_C1C3C2_ASN1", "RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}

// ParseExporter validates Tencent's EncryptionPublicKey (PEM) and
// EncryptionAlgorithm (empty means SM2, so an RSA key without an algorithm
// is an error) into the core's exporter, with errors naming those
// parameters; each distinct pair is parsed once (provider.CachedExporter).
// Neither given: no exporter (nil, nil). The one parser of the pair, for
// the wire and for the CLI's `kms GenerateDataKey`.
func ParseExporter(pemText, alg string) (*provider.PublicKeyExporter, error) {
	switch {
	case pemText == "" && alg == "":
		return nil, nil
	case pemText == "":
		return nil, provider.InvalidParam("EncryptionPublicKey", "is required with EncryptionAlgorithm")
	}
	return provider.CachedExporter([]string{"tencent", pemText, alg}, func() (*provider.PublicKeyExporter, error) {
		defaulted := alg == ""
		if defaulted {
			alg = "SM2"
		}
		if !slices.Contains(exportAlgorithms, alg) {
			return nil, provider.InvalidParam("EncryptionAlgorithm", "%q: accepted %s", provider.Clip(alg, 40), strings.Join(exportAlgorithms, ", "))
		}
		a, err := wrap.LookupAlgorithm(alg)
		if err != nil {
			return nil, fromWrap(err)
		}
		pub, spec, err := wrap.ParsePublicKeyPEM(pemText)
		if err != nil {
			return nil, fromWrap(err)
		}
		if err := a.CompatibleWith(spec); err != nil {
			hint := ""
			if defaulted {
				hint = " (an empty EncryptionAlgorithm means SM2)"
			}
			return nil, provider.InvalidParam("EncryptionAlgorithm", "%s does not fit a %s key%s", alg, spec, hint)
		}
		return provider.NewPublicKeyExporter("EncryptionPublicKey", a, pub), nil
	})
}

func generateDataKey(c *wire.Call, req *generateDataKeyRequest) (any, error) {
	preq := &provider.GenerateDataKeyRequest{KeyId: req.KeyId, KeySpec: req.KeySpec, EncryptionContext: req.ec, Exporter: req.ex}
	if n := req.NumberOfBytes; n != nil {
		preq.NumberOfBytes = new(int(min(*n, uint64(math.MaxInt))))
	}
	r, err := c.KMS.GenerateDataKey(c.Ctx, preq)
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, r.KeyVersionId)
	return object{"KeyId": r.KeyId, "Plaintext": r.Plaintext, "CiphertextBlob": r.CiphertextBlob}, nil
}

func encrypt(c *wire.Call, req *encryptRequest) (any, error) {
	r, err := c.KMS.Encrypt(c.Ctx, &provider.EncryptRequest{KeyId: req.KeyId, Plaintext: req.Plaintext, EncryptionContext: req.ec})
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, r.KeyVersionId)
	return object{"CiphertextBlob": r.CiphertextBlob, "KeyId": r.KeyId}, nil
}

// decrypt decrypts a blob; with EncryptionPublicKey the plaintext is
// returned encrypted under that key (base64), as GenerateDataKey does.
func decrypt(c *wire.Call, req *decryptRequest) (any, error) {
	r, err := c.KMS.Decrypt(c.Ctx, &provider.DecryptRequest{CiphertextBlob: req.CiphertextBlob, EncryptionContext: req.ec})
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, r.KeyVersionId)
	if req.ex == nil {
		return object{"KeyId": r.KeyId, "Plaintext": r.Plaintext}, nil
	}
	pt, err := base64.StdEncoding.DecodeString(r.Plaintext)
	if err != nil {
		return nil, provider.Internal("decoding the plaintext", err)
	}
	sealed, err := req.ex.Seal(pt)
	wrap.ZeroBytes(pt)
	if err != nil {
		return nil, err
	}
	return object{"KeyId": r.KeyId, "Plaintext": sealed}, nil
}

// reEncrypt moves a blob under DestinationKeyId (default: the blob's own
// key, which the pipeline authorized as the blob's, whose primary version
// may have rotated) and a new context.
func reEncrypt(c *wire.Call, req *reEncryptRequest) (any, error) {
	preq := &provider.ReEncryptRequest{CiphertextBlob: req.CiphertextBlob, DestinationKeyId: req.DestinationKeyId,
		SourceEncryptionContext: req.src, DestinationEncryptionContext: req.dst}
	var err error
	if preq.DestinationKeyId == "" {
		if preq.DestinationKeyId, err = c.KMS.BlobKeyId(c.Ctx, req.CiphertextBlob); err != nil {
			return nil, err
		}
	}
	r, err := c.KMS.ReEncrypt(c.Ctx, preq)
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, r.KeyVersionId)
	return object{"CiphertextBlob": r.CiphertextBlob, "KeyId": r.KeyId, "SourceKeyId": r.SourceKeyId, "ReEncrypted": true}, nil
}

// generateRandom returns random bytes from the token's RNG.
func generateRandom(c *wire.Call, req *generateRandomRequest) (any, error) {
	b, err := c.KMS.GenerateRandom(c.Ctx, "NumberOfBytes", *req.NumberOfBytes)
	if err != nil {
		return nil, err
	}
	defer wrap.ZeroBytes(b)
	return object{"Plaintext": base64.StdEncoding.EncodeToString(b)}, nil
}

// getServiceStatus answers enabled while the token answers.
func getServiceStatus(c *wire.Call, _ *emptyRequest) (any, error) {
	if err := c.KMS.Ready(c.Ctx); err != nil {
		return nil, provider.Internal("checking the key store", err)
	}
	return object{"ServiceEnabled": true, "InvalidType": 1, "UserLevel": 0, "ExclusiveVSMEnabled": false, "ExclusiveHSMEnabled": false}, nil
}
