package tencent

import (
	"encoding/base64"
	"math"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// The data-key, encryption, random and status actions, each called by the
// pipeline once it authorized the request (types.go validated it).

func generateDataKey(c *wire.Call, req *generateDataKeyRequest) (any, error) {
	preq := &provider.GenerateDataKeyRequest{KeyId: req.KeyId, KeySpec: req.KeySpec, EncryptionContext: req.ec,
		EncryptionPublicKey: req.EncryptionPublicKey, EncryptionAlgorithm: req.EncryptionAlgorithm}
	if n := req.NumberOfBytes; n != nil {
		preq.NumberOfBytes = new(int(min(*n, uint64(math.MaxInt))))
	}
	r, err := c.KMS.GenerateDataKey(c.Ctx, preq)
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, r.KeyVersionId)
	return &generateDataKeyResponse{KeyId: r.KeyId, Plaintext: r.Plaintext, CiphertextBlob: r.CiphertextBlob}, nil
}

func encrypt(c *wire.Call, req *encryptRequest) (any, error) {
	r, err := c.KMS.Encrypt(c.Ctx, &provider.EncryptRequest{KeyId: req.KeyId, Plaintext: req.Plaintext, EncryptionContext: req.ec})
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, r.KeyVersionId)
	return &encryptResponse{CiphertextBlob: r.CiphertextBlob, KeyId: r.KeyId}, nil
}

// decrypt decrypts a blob; with EncryptionPublicKey the plaintext is
// returned encrypted under that key (base64), as GenerateDataKey does.
func decrypt(c *wire.Call, req *decryptRequest) (any, error) {
	r, err := c.KMS.Decrypt(c.Ctx, &provider.DecryptRequest{CiphertextBlob: req.CiphertextBlob, EncryptionContext: req.ec})
	if err != nil {
		return nil, err
	}
	c.SetKey(r.KeyId, r.KeyVersionId)
	resp := &decryptResponse{KeyId: r.KeyId, Plaintext: r.Plaintext}
	if req.ex != nil {
		pt, err := base64.StdEncoding.DecodeString(r.Plaintext)
		if err != nil {
			return nil, provider.Internal("decoding the plaintext", err)
		}
		resp.Plaintext, err = req.ex.Seal(pt)
		wrap.ZeroBytes(pt)
		if err != nil {
			return nil, err
		}
	}
	return resp, nil
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
	return &reEncryptResponse{CiphertextBlob: r.CiphertextBlob, KeyId: r.KeyId, SourceKeyId: r.SourceKeyId, ReEncrypted: true}, nil
}

// generateRandom returns random bytes from the token's RNG.
func generateRandom(c *wire.Call, req *generateRandomRequest) (any, error) {
	b, err := c.KMS.GenerateRandom(c.Ctx, "NumberOfBytes", *req.NumberOfBytes)
	if err != nil {
		return nil, err
	}
	defer wrap.ZeroBytes(b)
	return &generateRandomResponse{Plaintext: base64.StdEncoding.EncodeToString(b)}, nil
}

// getServiceStatus answers enabled while the token answers.
func getServiceStatus(c *wire.Call, _ *emptyRequest) (any, error) {
	if err := c.KMS.Ready(c.Ctx); err != nil {
		return nil, provider.Internal("checking the key store", err)
	}
	return &serviceStatusResponse{ServiceEnabled: true, InvalidType: 1}, nil
}
