package xks

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
)

// service runs the four operations on the token.
type service struct {
	tok   *hsm.Token
	kms   *provider.Service    // nil: no CMK-backed keys
	file  atomic.Pointer[File] // replaced whole by Handler.Reload
	model string
	// probe is a session AES key made at start for the deep health check
	// (the spec: test keys, not a customer's key).
	probe hsm.ObjectHandle
}

// MetadataResponse is GetKeyMetadata's answer.
type MetadataResponse struct {
	KeySpec   string   `json:"keySpec"`
	KeyUsage  []string `json:"keyUsage"`
	KeyStatus string   `json:"keyStatus"`
}

// EncryptResponse is Encrypt's answer (binary fields Base64).
type EncryptResponse struct {
	Ciphertext                   string `json:"ciphertext"`
	CiphertextMetadata           string `json:"ciphertextMetadata,omitempty"`
	InitializationVector         string `json:"initializationVector"`
	AuthenticationTag            string `json:"authenticationTag"`
	CiphertextDataIntegrityValue string `json:"ciphertextDataIntegrityValue,omitempty"`
}

// DecryptResponse is Decrypt's answer.
type DecryptResponse struct {
	Plaintext string `json:"plaintext"`
}

// HealthResponse is GetHealthStatus's answer.
type HealthResponse struct {
	XksProxyFleetSize int          `json:"xksProxyFleetSize"`
	XksProxyVendor    string       `json:"xksProxyVendor"`
	XksProxyModel     string       `json:"xksProxyModel"`
	EkmVendor         string       `json:"ekmVendor"`
	EkmFleetDetails   []EkmDetails `json:"ekmFleetDetails"`
}

// EkmDetails is one external key manager (here: the token).
type EkmDetails struct {
	ID           string `json:"id"`
	Model        string `json:"model"`
	HealthStatus string `json:"healthStatus"`
}

var b64 = base64.StdEncoding

func (s *service) metadata(k *externalKey) *MetadataResponse {
	status := "ENABLED"
	if !k.enabled {
		status = "DISABLED"
	}
	return &MetadataResponse{KeySpec: "AES_256", KeyUsage: k.usageNames(), KeyStatus: status}
}

// encrypt seals in the token. With a CDIV asked for it follows Appendix C:
// the CDIV is computed first, then the output is decrypted and compared
// with the plaintext, so the key must also allow decryption.
func (s *service) encrypt(ctx context.Context, k *externalKey, in *encryptInput) (*EncryptResponse, error) {
	defer clear(in.plaintext)
	need, what := hsm.UsageEncrypt, "encryption"
	if in.cdiv {
		need, what = hsm.UsageEncrypt|hsm.UsageDecrypt, "encryption with a ciphertextDataIntegrityValue (checked by decrypting)"
	}
	if err := k.can(what, need); err != nil {
		return nil, err
	}
	if !k.enabled {
		return nil, fail(InvalidStateException, "the key %s is disabled", k.id)
	}
	md, sealed, err := k.backend.seal(ctx, in.plaintext, in.aad)
	if err != nil {
		return nil, err
	}
	out := &EncryptResponse{Ciphertext: b64.EncodeToString(sealed.Ciphertext), CiphertextMetadata: b64.EncodeToString(md),
		InitializationVector: b64.EncodeToString(sealed.IV), AuthenticationTag: b64.EncodeToString(sealed.Tag)}
	if in.cdiv {
		out.CiphertextDataIntegrityValue = b64.EncodeToString(cdiv(in.aad, md, sealed.IV, sealed.Ciphertext, sealed.Tag))
		pt, err := k.backend.open(ctx, md, sealed, in.aad)
		defer clear(pt)
		if err != nil || subtle.ConstantTimeCompare(pt, in.plaintext) != 1 {
			return nil, internal("checking the ciphertext by decrypting it", errors.Join(errors.New("round trip failed"), err))
		}
	}
	return out, nil
}

func (s *service) decrypt(ctx context.Context, k *externalKey, in *decryptInput) (*DecryptResponse, error) {
	if err := k.can("decryption", hsm.UsageDecrypt); err != nil {
		return nil, err
	}
	if len(in.iv) != hsm.GCMIVSize {
		return nil, fail(InvalidCiphertextException, "initializationVector: this proxy makes 12-byte IVs only")
	}
	if !k.enabled {
		return nil, fail(InvalidStateException, "the key %s is disabled", k.id)
	}
	pt, err := k.backend.open(ctx, in.metadata, hsm.Sealed{IV: in.iv, Ciphertext: in.ciphertext, Tag: in.tag}, in.aad)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return &DecryptResponse{Plaintext: b64.EncodeToString(pt)}, nil
}

// health seals and opens a probe under the test key: ACTIVE if the token
// did both, UNAVAILABLE otherwise.
func (s *service) health(ctx context.Context) *HealthResponse {
	status := "ACTIVE"
	probe := []byte("p11kms xks health")
	sealed, err := s.tok.SealGCM(ctx, s.probe, probe, aeadInput(nil, nil))
	if err == nil {
		var pt []byte
		pt, err = s.tok.OpenGCM(ctx, s.probe, sealed, aeadInput(nil, nil))
		if err == nil && string(pt) != string(probe) {
			err = errors.New("probe round trip differs")
		}
	}
	if err != nil {
		status = "UNAVAILABLE"
	}
	info := s.tok.Info()
	fleet := s.file.Load().FleetSize
	if fleet == 0 {
		fleet = 1
	}
	return &HealthResponse{XksProxyFleetSize: fleet, XksProxyVendor: "p11kms", XksProxyModel: s.model,
		EkmVendor: orUnknown(strings.TrimSpace(info.ManufacturerID)),
		EkmFleetDetails: []EkmDetails{{ID: orUnknown(s.tok.Serial()), HealthStatus: status,
			Model: fmt.Sprintf("%s firmware %d.%d", orUnknown(strings.TrimSpace(info.Model)), info.FirmwareVersion.Major, info.FirmwareVersion.Minor)}}}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
