package tencent

import (
	"encoding/base64"
	"math"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// The data-key, encryption, random and status actions.

func generateDataKey(c *call, req *generateDataKeyRequest) (any, error) {
	if err := required("KeyId", req.KeyId); err != nil {
		return nil, err
	}
	preq := &provider.GenerateDataKeyRequest{KeyId: req.KeyId, KeySpec: req.KeySpec,
		EncryptionPublicKey: req.EncryptionPublicKey, EncryptionAlgorithm: req.EncryptionAlgorithm}
	// KeySpec and NumberOfBytes are validated once, by the core; Tencent
	// only requires one of them.
	switch n := req.NumberOfBytes; {
	case n == nil && req.KeySpec == "":
		return nil, errorf(CodeMissingParameter, "one of KeySpec and NumberOfBytes is required")
	case n != nil:
		preq.NumberOfBytes = new(int(min(*n, uint64(math.MaxInt))))
	}
	var err error
	if preq.EncryptionContext, err = parseContext("EncryptionContext", req.EncryptionContext); err != nil {
		return nil, err
	}
	if err := c.authorize(keyParam(&preq.KeyId)); err != nil {
		return nil, err
	}
	r, err := c.h.kms.GenerateDataKey(c.ctx, preq)
	if err != nil {
		return nil, err
	}
	c.setKey(r.KeyId, r.KeyVersionId)
	return &generateDataKeyResponse{KeyId: r.KeyId, Plaintext: r.Plaintext, CiphertextBlob: r.CiphertextBlob}, nil
}

func encrypt(c *call, req *encryptRequest) (any, error) {
	if err := required("KeyId", req.KeyId); err != nil {
		return nil, err
	}
	if err := required("Plaintext", req.Plaintext); err != nil {
		return nil, err
	}
	pt, err := base64.StdEncoding.DecodeString(req.Plaintext)
	n := len(pt)
	wrap.ZeroBytes(pt)
	if err != nil || n == 0 || n > maxPlaintextBytes {
		return nil, errorf(CodeInvalidPlaintext, "Plaintext: accepted base64 of 1 to %d bytes", maxPlaintextBytes)
	}
	preq := &provider.EncryptRequest{KeyId: req.KeyId, Plaintext: req.Plaintext}
	if preq.EncryptionContext, err = parseContext("EncryptionContext", req.EncryptionContext); err != nil {
		return nil, err
	}
	if err := c.authorize(keyParam(&preq.KeyId)); err != nil {
		return nil, err
	}
	r, err := c.h.kms.Encrypt(c.ctx, preq)
	if err != nil {
		return nil, err
	}
	c.setKey(r.KeyId, r.KeyVersionId)
	return &encryptResponse{CiphertextBlob: r.CiphertextBlob, KeyId: r.KeyId}, nil
}

// decrypt decrypts a blob; with EncryptionPublicKey the plaintext is
// returned encrypted under that key (base64), as GenerateDataKey does.
func decrypt(c *call, req *decryptRequest) (any, error) {
	if err := required("CiphertextBlob", req.CiphertextBlob); err != nil {
		return nil, err
	}
	preq := &provider.DecryptRequest{CiphertextBlob: req.CiphertextBlob}
	var err error
	if preq.EncryptionContext, err = parseContext("EncryptionContext", req.EncryptionContext); err != nil {
		return nil, err
	}
	var ex *provider.PublicKeyExporter
	if req.EncryptionPublicKey != "" || req.EncryptionAlgorithm != "" {
		if ex, err = provider.NewPublicKeyExporter(req.EncryptionPublicKey, req.EncryptionAlgorithm); err != nil {
			return nil, err
		}
	}
	if err := c.authorize(wire.Touched{Blob: preq.CiphertextBlob}); err != nil {
		return nil, err
	}
	r, err := c.h.kms.Decrypt(c.ctx, preq)
	if err != nil {
		return nil, err
	}
	c.setKey(r.KeyId, r.KeyVersionId)
	resp := &decryptResponse{KeyId: r.KeyId, Plaintext: r.Plaintext}
	if ex != nil {
		pt, err := base64.StdEncoding.DecodeString(r.Plaintext)
		if err != nil {
			return nil, provider.Internal("decoding the plaintext", err)
		}
		resp.Plaintext, err = ex.Seal(pt)
		wrap.ZeroBytes(pt)
		if err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// reEncrypt moves a blob under DestinationKeyId (default: the blob's own
// key, whose primary version may have rotated) and a new context.
func reEncrypt(c *call, req *reEncryptRequest) (any, error) {
	if err := required("CiphertextBlob", req.CiphertextBlob); err != nil {
		return nil, err
	}
	preq := &provider.ReEncryptRequest{CiphertextBlob: req.CiphertextBlob, DestinationKeyId: req.DestinationKeyId}
	var err error
	if preq.SourceEncryptionContext, err = parseContext("SourceEncryptionContext", req.SourceEncryptionContext); err != nil {
		return nil, err
	}
	if preq.DestinationEncryptionContext, err = parseContext("DestinationEncryptionContext", req.DestinationEncryptionContext); err != nil {
		return nil, err
	}
	if preq.DestinationKeyId == "" {
		if preq.DestinationKeyId, err = c.h.kms.BlobKeyId(c.ctx, req.CiphertextBlob); err != nil {
			return nil, err
		}
	}
	if err := c.authorize(wire.Touched{KeyParam: "DestinationKeyId", Key: &preq.DestinationKeyId, Blob: preq.CiphertextBlob}); err != nil {
		return nil, err
	}
	r, err := c.h.kms.ReEncrypt(c.ctx, preq)
	if err != nil {
		return nil, err
	}
	c.setKey(r.KeyId, r.KeyVersionId)
	return &reEncryptResponse{CiphertextBlob: r.CiphertextBlob, KeyId: r.KeyId, SourceKeyId: r.SourceKeyId, ReEncrypted: true}, nil
}

// generateRandom returns random bytes from the token's RNG.
func generateRandom(c *call, req *generateRandomRequest) (any, error) {
	if req.NumberOfBytes == nil {
		return nil, errorf(CodeMissingParameter, "the parameter NumberOfBytes is required")
	}
	if err := c.authorize(wire.Touched{}); err != nil {
		return nil, err
	}
	b, err := c.h.kms.GenerateRandom(c.ctx, "NumberOfBytes", *req.NumberOfBytes)
	if err != nil {
		return nil, err
	}
	defer wrap.ZeroBytes(b)
	return &generateRandomResponse{Plaintext: base64.StdEncoding.EncodeToString(b)}, nil
}

// getServiceStatus answers enabled while the token answers.
func getServiceStatus(c *call, _ *emptyRequest) (any, error) {
	if err := c.authorize(wire.Touched{}); err != nil {
		return nil, err
	}
	if err := c.h.kms.Ready(c.ctx); err != nil {
		return nil, provider.Internal("checking the key store", err)
	}
	return &serviceStatusResponse{ServiceEnabled: true, InvalidType: 1}, nil
}
