package tencent

import (
	"encoding/base64"
	"strings"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// The request shapes of the Tencent actions: field names are the wire
// names; a field tagged wire:"required" is MissingParameter when absent
// (checked by Decode), and a request's check method validates the rest
// before the pipeline authorizes it. Responses are objects by wire name
// (handler.go).

type tagParam struct {
	TagKey   string
	TagValue string
}

type createKeyRequest struct {
	Alias        string `wire:"required"`
	Description  string
	KeyUsage     string
	Type         *uint64
	Tags         []tagParam
	HsmClusterId string
}

func (r *createKeyRequest) check() error {
	if err := checkAlias(r.Alias); err != nil {
		return err
	}
	if _, asym := asymmetricKeys[r.KeyUsage]; r.KeyUsage != "" && r.KeyUsage != keyUsageSymmetric && !asym {
		return errorf(CodeInvalidKeyUsage, "KeyUsage %q: accepted ENCRYPT_DECRYPT, %s", provider.Clip(r.KeyUsage, 40), strings.Join(asymmetricUsages, ", "))
	}
	switch {
	case r.Type == nil || *r.Type == 1:
	case *r.Type == 2:
		if r.KeyUsage != "" && r.KeyUsage != keyUsageSymmetric {
			return errorf(CodeInvalidKeyUsage, "KeyUsage %s with Type 2 (EXTERNAL): accepted ENCRYPT_DECRYPT", provider.Clip(r.KeyUsage, 40))
		}
	default:
		return errorf(CodeInvalidType, "Type %d: accepted 1 (key material made by the KMS) or 2 (imported)", *r.Type)
	}
	if err := noHsmCluster(r.HsmClusterId); err != nil {
		return err
	}
	if len(r.Description) > maxDescription {
		return provider.InvalidParam("Description", "%d bytes: at most %d", len(r.Description), maxDescription)
	}
	tagKeys := map[string]bool{}
	for i, t := range r.Tags {
		if t.TagKey == "" {
			return errorf(CodeMissingParameter, "the parameter Tags.%d.TagKey is required", i)
		}
		if tagKeys[t.TagKey] {
			return errorf(CodeTagKeysDuplicated, "the tag key %q appears more than once", provider.Clip(t.TagKey, 64))
		}
		tagKeys[t.TagKey] = true
	}
	return nil
}

type keyIDRequest struct {
	KeyId string `wire:"required"`
}

type keyIDsRequest struct {
	KeyIds []string `wire:"required"`
}

// check validates a KeyIds list.
func (r *keyIDsRequest) check() error {
	if len(r.KeyIds) > maxBatchKeys {
		return errorf(CodeInvalidParameterVal, "KeyIds: at most %d keys", maxBatchKeys)
	}
	for i, id := range r.KeyIds {
		if id == "" {
			return errorf(CodeMissingParameter, "the parameter KeyIds.%d is empty", i)
		}
	}
	return nil
}

type listKeysRequest struct {
	Offset       *uint64
	Limit        *uint64
	Role         *uint64
	HsmClusterId string
}

func (r *listKeysRequest) check() error {
	if r.Limit != nil && (*r.Limit < 1 || *r.Limit > maxListLimit) {
		return provider.InvalidParam("Limit", "%d: accepted 1 to %d", *r.Limit, maxListLimit)
	}
	if r.Offset != nil && *r.Offset > maxOffset {
		return provider.InvalidParam("Offset", "%d: at most %d", *r.Offset, maxOffset)
	}
	if r.Role != nil && *r.Role > 1 {
		return provider.InvalidParam("Role", "%d: accepted 0 (keys you created) or 1 (keys of cloud products)", *r.Role)
	}
	return noHsmCluster(r.HsmClusterId)
}

type scheduleKeyDeletionRequest struct {
	KeyId               string  `wire:"required"`
	PendingWindowInDays *uint64 `wire:"required"`
}

// check follows Tencent: the window is 7 to 30 days.
func (r *scheduleKeyDeletionRequest) check() error {
	if days := *r.PendingWindowInDays; days < minPendingDays || days > maxPendingDays {
		return errorf(CodeInvalidPendingWindow, "PendingWindowInDays %d: accepted %d to %d", days, minPendingDays, maxPendingDays)
	}
	return nil
}

type updateAliasRequest struct {
	Alias string `wire:"required"`
	KeyId string `wire:"required"`

	keyID    string   // the key, resolved (UpdateAlias's More)
	noop     bool     // the alias names the key already
	replaced []string // the key's Tencent aliases it replaces, authorized
}

func (r *updateAliasRequest) check() error { return checkAlias(r.Alias) }

type enableKeyRotationRequest struct {
	KeyId      string `wire:"required"`
	RotateDays *uint64
}

func (r *enableKeyRotationRequest) check() error {
	if d := r.RotateDays; d != nil && (*d < provider.MinRotationDays || *d > provider.MaxRotationDays) {
		return provider.InvalidParam("RotateDays", "%d: accepted %d to %d", *d, provider.MinRotationDays, provider.MaxRotationDays)
	}
	return nil
}

type generateDataKeyRequest struct {
	KeyId               string `wire:"required"`
	KeySpec             string
	NumberOfBytes       *uint64
	EncryptionContext   string
	EncryptionPublicKey string
	EncryptionAlgorithm string

	ec wrap.EncryptionContext
	ex *provider.PublicKeyExporter
}

// check: Tencent only requires one of KeySpec and NumberOfBytes; the core
// validates both, once.
func (r *generateDataKeyRequest) check() (err error) {
	if r.NumberOfBytes == nil && r.KeySpec == "" {
		return errorf(CodeMissingParameter, "one of KeySpec and NumberOfBytes is required")
	}
	r.ec, r.ex, err = contextAndExporter(r.EncryptionContext, r.EncryptionPublicKey, r.EncryptionAlgorithm)
	return err
}

type encryptRequest struct {
	KeyId             string `wire:"required"`
	Plaintext         string `wire:"required"`
	EncryptionContext string

	ec wrap.EncryptionContext
}

// check: Tencent's Plaintext is 1 to 4096 bytes, with its own code, judged
// from its encoded length (no copy of the plaintext is made here; the core
// decodes it once and refuses what is not base64, coded InvalidPlaintext).
func (r *encryptRequest) check() (err error) {
	p := r.Plaintext
	if n := base64.StdEncoding.DecodedLen(len(p)) - strings.Count(p[max(0, len(p)-2):], "="); n < 1 || n > maxPlaintextBytes {
		return errorf(CodeInvalidPlaintext, "Plaintext: accepted base64 of 1 to %d bytes", maxPlaintextBytes)
	}
	r.ec, err = parseContext("EncryptionContext", r.EncryptionContext)
	return err
}

// contextAndExporter parses an EncryptionContext and the public-key
// parameters (GenerateDataKey, Decrypt).
func contextAndExporter(ec, pemText, alg string) (wrap.EncryptionContext, *provider.PublicKeyExporter, error) {
	c, err := parseContext("EncryptionContext", ec)
	if err != nil {
		return nil, nil, err
	}
	ex, err := ParseExporter(pemText, alg)
	return c, ex, err
}

type decryptRequest struct {
	CiphertextBlob      string `wire:"required"`
	EncryptionContext   string
	EncryptionPublicKey string
	EncryptionAlgorithm string

	ec wrap.EncryptionContext
	ex *provider.PublicKeyExporter
}

func (r *decryptRequest) check() (err error) {
	r.ec, r.ex, err = contextAndExporter(r.EncryptionContext, r.EncryptionPublicKey, r.EncryptionAlgorithm)
	return err
}

type reEncryptRequest struct {
	CiphertextBlob               string `wire:"required"`
	DestinationKeyId             string
	SourceEncryptionContext      string
	DestinationEncryptionContext string

	src, dst wrap.EncryptionContext
}

func (r *reEncryptRequest) check() (err error) {
	if r.src, err = parseContext("SourceEncryptionContext", r.SourceEncryptionContext); err != nil {
		return err
	}
	r.dst, err = parseContext("DestinationEncryptionContext", r.DestinationEncryptionContext)
	return err
}

type generateRandomRequest struct {
	NumberOfBytes *uint64 `wire:"required"`
}

type emptyRequest struct{}
