package awskms

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
	"github.com/p11kms/p11kms/wrap/cms"
)

// AWS's limits for the symmetric operations.
const (
	maxPlaintext = 4096
	maxDataKey   = provider.MaxDataKeyBytes
)

// blob is a base64 string passed through as AWS's JSON blob encoding
// (standard base64): the core's plaintexts are not decoded and copied
// again on their way out.
type blob string

// MarshalJSON writes the base64 string as it is.
func (b blob) MarshalJSON() ([]byte, error) { return json.Marshal(string(b)) }

// decodedLen is the byte length a padded standard base64 string decodes to.
func decodedLen(s string) int {
	n := len(s) / 4 * 3
	for i := len(s) - 1; i >= 0 && i >= len(s)-2 && s[i] == '='; i-- {
		n--
	}
	return n
}

// symmetric checks an EncryptionAlgorithm parameter: absent or
// SYMMETRIC_DEFAULT, the algorithm of every key here.
func symmetric(param, v string) error {
	switch v {
	case "", keySpecSymmetric:
		return nil
	case "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE":
		return errorf(CodeInvalidKeyUsage, "%s: %s is for asymmetric keys; the keys here are %s", param, v, keySpecSymmetric)
	}
	return oneOf(param, v, keySpecSymmetric)
}

// recipientInfo is AWS's RecipientInfo: an attestation document naming
// the enclave's public key, and how to wrap for it.
type recipientInfo struct {
	KeyEncryptionAlgorithm string
	AttestationDocument    []byte
}

// recipientKey checks a Recipient (absent: nil) and returns the RSA key
// its attestation document names.
func recipientKey(r *recipientInfo, x refs) (*rsa.PublicKey, error) {
	if r == nil {
		return nil, nil
	}
	if err := oneOf("Recipient.KeyEncryptionAlgorithm", r.KeyEncryptionAlgorithm, "RSAES_OAEP_SHA_256"); err != nil {
		return nil, err
	}
	if len(r.AttestationDocument) == 0 {
		return nil, invalid("Recipient.AttestationDocument", "is required: a Nitro Enclaves attestation document")
	}
	d, err := x.attest.Verify(r.AttestationDocument)
	if err != nil {
		return nil, invalid("Recipient.AttestationDocument", "%s", provider.Clip(err.Error(), 256))
	}
	pub, err := cms.RecipientKey(d.PublicKey)
	if err != nil {
		return nil, invalid("Recipient.AttestationDocument", "its public_key: %s", provider.Clip(err.Error(), 256))
	}
	return pub, nil
}

// forRecipient envelopes the core's base64 plaintext for the recipient
// (AWS's CiphertextForRecipient), clearing the decoded bytes.
func forRecipient(pub *rsa.PublicKey, plaintextB64 string) ([]byte, error) {
	pt, err := base64.StdEncoding.DecodeString(plaintextB64)
	defer clear(pt)
	if err != nil {
		return nil, provider.Internal("decoding the plaintext", err)
	}
	env, err := cms.Envelope(pub, pt)
	if err != nil {
		return nil, provider.Internal("enveloping for the Recipient", err)
	}
	return env, nil
}

type dataKeyRequest struct {
	KeyId             string                 `cli:"required" help:"key id, key ARN, alias/<name> or alias ARN"`
	KeySpec           string                 `help:"AES_128 or AES_256 (or NumberOfBytes)"`
	NumberOfBytes     *int                   `help:"1 to 1024 (or KeySpec)"`
	EncryptionContext wrap.EncryptionContext `help:"JSON object of strings"`
	GrantTokens       []string               `help:"not supported (p11kms issues no grants): leave out"`
	DryRun            bool                   `help:"check the request and the key, do nothing (DryRunOperationException)"`
	Recipient         *recipientInfo         `help:"JSON {\"KeyEncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\",\"AttestationDocument\":\"<base64>\"}: the data key goes to the attested key (CiphertextForRecipient), not in Plaintext"`
	recipient         *rsa.PublicKey
}

func (r *dataKeyRequest) prepare(x refs) error {
	switch {
	case r.KeySpec == "" && r.NumberOfBytes == nil:
		return invalid("KeySpec", "either KeySpec (AES_128, AES_256) or NumberOfBytes (1 to %d) is required", maxDataKey)
	case r.KeySpec != "" && r.NumberOfBytes != nil:
		return invalid("KeySpec", "give KeySpec or NumberOfBytes, not both")
	}
	for _, err := range []error{oneOf("KeySpec", r.KeySpec, "AES_128", "AES_256"), intRange("NumberOfBytes", r.NumberOfBytes, 1, maxDataKey),
		noGrants(r.GrantTokens)} {
		if err != nil {
			return err
		}
	}
	var err error
	if r.recipient, err = recipientKey(r.Recipient, x); err != nil {
		return err
	}
	return x.coreRef("KeyId", &r.KeyId)
}

type dataKeyResponse struct {
	CiphertextBlob         blob
	KeyId                  string
	Plaintext              blob   `json:",omitempty"`
	CiphertextForRecipient []byte `json:",omitempty"`
}

type encryptRequest struct {
	KeyId               string                 `cli:"required" help:"key id, key ARN, alias/<name> or alias ARN"`
	Plaintext           string                 `cli:"required" help:"base64 of 1 to 4096 bytes"`
	EncryptionContext   wrap.EncryptionContext `help:"JSON object of strings"`
	GrantTokens         []string               `help:"not supported (p11kms issues no grants): leave out"`
	EncryptionAlgorithm string                 `help:"SYMMETRIC_DEFAULT (the only one)"`
	DryRun              bool                   `help:"check the request and the key, do nothing (DryRunOperationException)"`
}

func (r *encryptRequest) prepare(x refs) error {
	if r.Plaintext == "" {
		return invalid("Plaintext", "is required: 1 to %d bytes", maxPlaintext)
	}
	if n := decodedLen(r.Plaintext); n > maxPlaintext {
		return invalid("Plaintext", "%d bytes: accepted 1 to %d", n, maxPlaintext)
	}
	if err := symmetric("EncryptionAlgorithm", r.EncryptionAlgorithm); err != nil {
		return err
	}
	if err := noGrants(r.GrantTokens); err != nil {
		return err
	}
	return x.coreRef("KeyId", &r.KeyId)
}

type encryptResponse struct {
	CiphertextBlob      blob
	KeyId               string
	EncryptionAlgorithm string
}

type decryptRequest struct {
	CiphertextBlob      string                 `cli:"required" help:"base64 CiphertextBlob"`
	EncryptionContext   wrap.EncryptionContext `help:"JSON object of strings"`
	GrantTokens         []string               `help:"not supported (p11kms issues no grants): leave out"`
	KeyId               string                 `help:"optional: the key the blob must be under (IncorrectKeyException otherwise)"`
	EncryptionAlgorithm string                 `help:"SYMMETRIC_DEFAULT (the only one)"`
	DryRun              bool                   `help:"check the request and the key, do nothing (DryRunOperationException)"`
	Recipient           *recipientInfo         `help:"JSON {\"KeyEncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\",\"AttestationDocument\":\"<base64>\"}: the plaintext goes to the attested key (CiphertextForRecipient)"`
	recipient           *rsa.PublicKey
}

func (r *decryptRequest) prepare(x refs) error {
	if r.CiphertextBlob == "" {
		return invalid("CiphertextBlob", "is required")
	}
	for _, err := range []error{symmetric("EncryptionAlgorithm", r.EncryptionAlgorithm), noGrants(r.GrantTokens)} {
		if err != nil {
			return err
		}
	}
	var err error
	if r.recipient, err = recipientKey(r.Recipient, x); err != nil {
		return err
	}
	return x.optionalRef("KeyId", &r.KeyId)
}

type decryptResponse struct {
	KeyId                  string
	Plaintext              blob `json:",omitempty"`
	EncryptionAlgorithm    string
	CiphertextForRecipient []byte `json:",omitempty"`
}

type reEncryptRequest struct {
	CiphertextBlob                 string                 `cli:"required" help:"base64 CiphertextBlob"`
	SourceEncryptionContext        wrap.EncryptionContext `help:"JSON object of strings of the source blob"`
	SourceKeyId                    string                 `help:"optional: the key the blob must be under (IncorrectKeyException otherwise)"`
	DestinationKeyId               string                 `cli:"required" help:"key id, key ARN, alias/<name> or alias ARN"`
	DestinationEncryptionContext   wrap.EncryptionContext `help:"JSON object of strings for the new blob"`
	SourceEncryptionAlgorithm      string                 `help:"SYMMETRIC_DEFAULT (the only one)"`
	DestinationEncryptionAlgorithm string                 `help:"SYMMETRIC_DEFAULT (the only one)"`
	GrantTokens                    []string               `help:"not supported (p11kms issues no grants): leave out"`
	DryRun                         bool                   `help:"check the request and the key, do nothing (DryRunOperationException)"`
}

func (r *reEncryptRequest) prepare(x refs) error {
	if r.CiphertextBlob == "" {
		return invalid("CiphertextBlob", "is required")
	}
	for _, err := range []error{symmetric("SourceEncryptionAlgorithm", r.SourceEncryptionAlgorithm),
		symmetric("DestinationEncryptionAlgorithm", r.DestinationEncryptionAlgorithm), noGrants(r.GrantTokens),
		x.optionalRef("SourceKeyId", &r.SourceKeyId)} {
		if err != nil {
			return err
		}
	}
	return x.coreRef("DestinationKeyId", &r.DestinationKeyId)
}

type reEncryptResponse struct {
	CiphertextBlob                 blob
	SourceKeyId                    string
	KeyId                          string
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
}

type randomRequest struct {
	NumberOfBytes    *int           `cli:"required" help:"1 to 1024"`
	CustomKeyStoreId string         `help:"not supported"`
	Recipient        *recipientInfo `help:"JSON {\"KeyEncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\",\"AttestationDocument\":\"<base64>\"}: the bytes go to the attested key (CiphertextForRecipient)"`
	recipient        *rsa.PublicKey
}

func (r *randomRequest) prepare(x refs) error {
	if r.NumberOfBytes == nil {
		return invalid("NumberOfBytes", "is required: 1 to %d", maxDataKey)
	}
	if r.CustomKeyStoreId != "" {
		return unsupported("CustomKeyStoreId", "the random bytes come from this server's PKCS#11 token; custom key stores are not supported")
	}
	if err := intRange("NumberOfBytes", r.NumberOfBytes, 1, maxDataKey); err != nil {
		return err
	}
	var err error
	r.recipient, err = recipientKey(r.Recipient, x)
	return err
}

type randomResponse struct {
	Plaintext              blob   `json:",omitempty"`
	CiphertextForRecipient []byte `json:",omitempty"`
}

func init() {
	dataKeyTouched := func(r *dataKeyRequest) wire.Touched { return keyParam(&r.KeyId) }
	register(map[string]*op{
		"GenerateDataKey":                 operation(dataKeyTouched, func(c *call, r *dataKeyRequest) (any, error) { return c.dataKey(r, true) }).says("Generate a data key, in plaintext (or for a Recipient) and under the key"),
		"GenerateDataKeyWithoutPlaintext": operation(dataKeyTouched, func(c *call, r *dataKeyRequest) (any, error) { return c.dataKey(r, false) }).says("Generate a data key, returned only under the key"),
		"Encrypt":                         operation(func(r *encryptRequest) wire.Touched { return keyParam(&r.KeyId) }, (*call).encrypt).says("Encrypt up to 4096 bytes under a key"),
		"Decrypt": operation(func(r *decryptRequest) wire.Touched {
			return wire.Touched{KeyParam: "KeyId", Key: &r.KeyId, Blob: r.CiphertextBlob}
		}, (*call).decrypt).says("Decrypt a CiphertextBlob (or re-encrypt it for a Recipient)"),
		"ReEncrypt": operation(func(r *reEncryptRequest) wire.Touched {
			return wire.Touched{KeyParam: "DestinationKeyId", Key: &r.DestinationKeyId, Blob: r.CiphertextBlob}
		}, (*call).reEncrypt).says("Re-encrypt a CiphertextBlob under another key"),
		"GenerateRandom": operation(nil, (*call).random).says("Random bytes from the token"),
	})
}

func (c *call) dataKey(r *dataKeyRequest, withPlaintext bool) (any, error) {
	if !withPlaintext && r.Recipient != nil {
		return nil, errorf(CodeSerialization, "Recipient is not a parameter of GenerateDataKeyWithoutPlaintext")
	}
	var resp *provider.GenerateDataKeyResponse
	var err error
	if withPlaintext {
		resp, err = c.kms.GenerateDataKey(c.ctx, &provider.GenerateDataKeyRequest{KeyId: r.KeyId, KeySpec: r.KeySpec,
			NumberOfBytes: r.NumberOfBytes, EncryptionContext: r.EncryptionContext, DryRun: r.DryRun})
	} else {
		resp, err = c.kms.GenerateDataKeyWithoutPlaintext(c.ctx, &provider.GenerateDataKeyWithoutPlaintextRequest{KeyId: r.KeyId,
			KeySpec: r.KeySpec, NumberOfBytes: r.NumberOfBytes, EncryptionContext: r.EncryptionContext, DryRun: r.DryRun})
	}
	if err != nil {
		return nil, err
	}
	c.key(resp.KeyId, resp.KeyVersionId)
	out := &dataKeyResponse{CiphertextBlob: blob(resp.CiphertextBlob), KeyId: c.refs.keyArn(resp.KeyId), Plaintext: blob(resp.Plaintext)}
	if r.recipient != nil {
		if out.CiphertextForRecipient, err = forRecipient(r.recipient, resp.Plaintext); err != nil {
			return nil, err
		}
		out.Plaintext = ""
	}
	return out, nil
}

func (c *call) encrypt(r *encryptRequest) (any, error) {
	resp, err := c.kms.Encrypt(c.ctx, &provider.EncryptRequest{KeyId: r.KeyId, Plaintext: r.Plaintext, EncryptionContext: r.EncryptionContext, DryRun: r.DryRun})
	if err != nil {
		return nil, err
	}
	c.key(resp.KeyId, resp.KeyVersionId)
	return &encryptResponse{CiphertextBlob: blob(resp.CiphertextBlob), KeyId: c.refs.keyArn(resp.KeyId), EncryptionAlgorithm: keySpecSymmetric}, nil
}

// blobIsUnder refuses, with IncorrectKeyException, a CiphertextBlob that
// is not under the key param names (when it names one).
func (c *call) blobIsUnder(param, ref, ciphertext string) error {
	if ref == "" {
		return nil
	}
	want, err := c.kms.ResolveKey(c.ctx, param, ref)
	if err != nil {
		return err
	}
	got, err := c.kms.BlobKeyId(c.ctx, ciphertext)
	if err != nil {
		return err
	}
	if got != want {
		return errorf(CodeIncorrectKey, "%s: the CiphertextBlob was not encrypted under the key %s", param, provider.Clip(ref, 128))
	}
	return nil
}

func (c *call) decrypt(r *decryptRequest) (any, error) {
	if err := c.blobIsUnder("KeyId", r.KeyId, r.CiphertextBlob); err != nil {
		return nil, err
	}
	resp, err := c.kms.Decrypt(c.ctx, &provider.DecryptRequest{CiphertextBlob: r.CiphertextBlob, EncryptionContext: r.EncryptionContext, DryRun: r.DryRun})
	if err != nil {
		return nil, err
	}
	c.key(resp.KeyId, resp.KeyVersionId)
	out := &decryptResponse{KeyId: c.refs.keyArn(resp.KeyId), Plaintext: blob(resp.Plaintext), EncryptionAlgorithm: keySpecSymmetric}
	if r.recipient != nil {
		if out.CiphertextForRecipient, err = forRecipient(r.recipient, resp.Plaintext); err != nil {
			return nil, err
		}
		out.Plaintext = ""
	}
	return out, nil
}

func (c *call) reEncrypt(r *reEncryptRequest) (any, error) {
	if err := c.blobIsUnder("SourceKeyId", r.SourceKeyId, r.CiphertextBlob); err != nil {
		return nil, err
	}
	resp, err := c.kms.ReEncrypt(c.ctx, &provider.ReEncryptRequest{CiphertextBlob: r.CiphertextBlob, SourceEncryptionContext: r.SourceEncryptionContext,
		DestinationKeyId: r.DestinationKeyId, DestinationEncryptionContext: r.DestinationEncryptionContext, DryRun: r.DryRun})
	if err != nil {
		return nil, err
	}
	c.key(resp.KeyId, resp.KeyVersionId)
	return &reEncryptResponse{CiphertextBlob: blob(resp.CiphertextBlob), SourceKeyId: c.refs.keyArn(resp.SourceKeyId), KeyId: c.refs.keyArn(resp.KeyId),
		SourceEncryptionAlgorithm: keySpecSymmetric, DestinationEncryptionAlgorithm: keySpecSymmetric}, nil
}

func (c *call) random(r *randomRequest) (any, error) {
	b, err := c.kms.GenerateRandom(c.ctx, "NumberOfBytes", uint64(*r.NumberOfBytes))
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if r.recipient != nil {
		env, err := cms.Envelope(r.recipient, b)
		if err != nil {
			return nil, provider.Internal("enveloping for the Recipient", err)
		}
		return &randomResponse{CiphertextForRecipient: env}, nil
	}
	return &randomResponse{Plaintext: blob(base64.StdEncoding.EncodeToString(b))}, nil
}
