package xks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/p11kms/p11kms/provider/wire"
)

// File is the XKS configuration file (xks.json in the p11kms home, mode
// 0600): the credentials AWS KMS signs with, their secrets sealed under the
// token's key (LoadSealedFile), and the external keys it may use.
type File struct {
	// URIPrefix is the optional path prefix before /kms/xks/v1 (no leading
	// or trailing slash), as configured in AWS KMS's XksProxyUriPath.
	URIPrefix string `json:"uriPrefix,omitempty"`
	// Credentials are the SigV4 credentials of this proxy: at least one,
	// two while rotating (the spec's "SigV4 credentials rotation").
	Credentials []Credential `json:"credentials"`
	// Keys are the external keys served, by externalKeyId. A key not listed
	// is not found, whatever the token holds.
	Keys map[string]Key `json:"keys"`
	// FleetSize is the health answer's xksProxyFleetSize (default 1).
	FleetSize int `json:"fleetSize,omitempty"`
}

// Credential is one SigV4 access key id and secret access key.
//
// In the file the secret is SealedSecretAccessKey (internal/secretseal,
// purpose SealPurpose): the file alone signs nothing. SecretAccessKey in
// the file is the plaintext form written by hand or by an older p11kms,
// sealed in the file by the first load that has the token
// (LoadSealedFile). In memory, once loaded, SecretAccessKey holds the
// secret.
type Credential struct {
	AccessKeyID           string `json:"accessKeyId"`
	SecretAccessKey       string `json:"secretAccessKey,omitempty"`
	SealedSecretAccessKey string `json:"sealedSecretAccessKey,omitempty"`
}

// Key is one external key: what backs it and its secondary-authorization
// policy.
type Key struct {
	// Label is the CKA_LABEL of the AES-256 key in the token (default: the
	// externalKeyId itself).
	Label string `json:"label,omitempty"`
	// CMK, instead, names a p11kms CMK (key id, alias/… or ARN): its
	// primary version encrypts, the version in the ciphertextMetadata
	// decrypts, and its state is the key's status.
	CMK string `json:"cmk,omitempty"`
	// Principals are the requestMetadata.awsPrincipalArn patterns allowed
	// (* and ? wildcards; absent: any principal).
	Principals []string `json:"principals,omitempty"`
	// Operations are the requestMetadata.kmsOperation patterns allowed
	// (e.g. "Encrypt", "GenerateDataKey*"; absent: any operation).
	Operations []string `json:"operations,omitempty"`
	// Disabled makes the key's keyStatus DISABLED: Encrypt and Decrypt
	// are InvalidStateException until it is enabled again (`p11kms xks
	// disable-key` / `enable-key`). A CMK-backed key is also DISABLED
	// while its CMK is not Enabled.
	Disabled bool `json:"disabled,omitempty"`
	// Foreign allows a token key not made by `p11kms xks create-key` (whose
	// CKA_ID starts with KeyIDPrefix), e.g. one an HSM administrator made.
	// Without it such a key is refused: a key that something else uses
	// under its own AAD format (an imported data key) must not become an
	// XKS encryption and decryption oracle by a typo in the file.
	Foreign bool `json:"foreign,omitempty"`
}

// KeyIDPrefix starts the CKA_ID of every key `p11kms xks create-key`
// makes (then 16 random bytes): what marks a token key as made for XKS.
const KeyIDPrefix = "p11kms-xks:"

// The spec's character sets (Appendix A and "API operations").
var (
	accessKeyIDPattern   = regexp.MustCompile(`^[A-Z2-7]{20,30}$`)
	secretPattern        = regexp.MustCompile(`^[A-Za-z0-9+/=]{43,64}$`)
	externalKeyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	uriPrefixPattern     = regexp.MustCompile(`^[A-Za-z0-9/_-]*$`)
)

// ownLabels starts the label of every key p11kms makes for itself: its
// CMK versions are used under another AAD format and must not become an
// XKS encryption and decryption oracle.
const ownLabels = "p11kms/"

// maxSealed bounds a sealed secret: Base64 of IV, a 64-byte secret and
// the tag is 124 characters.
const maxSealed = 256

// maxURIPath bounds XksProxyUriPath ([/prefix]/kms/xks/v1): 128 characters.
const maxURIPath = 128

// LoadFile reads and checks an XKS configuration file (strict JSON:
// unknown fields are errors), without opening its sealed secrets (for
// that: LoadSealedFile).
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("xks: %w", err)
	}
	return parseFile(path, b)
}

// parseFile decodes and checks the file's bytes.
func parseFile(path string, b []byte) (*File, error) {
	f, err := decodeFile(path, b)
	if err != nil {
		return nil, err
	}
	if err := f.Check(); err != nil {
		return nil, fmt.Errorf("xks: %s: %w", path, err)
	}
	return f, nil
}

// decodeFile decodes the file's bytes, strictly, without checking them.
func decodeFile(path string, b []byte) (*File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("xks: %s: %w", path, err)
	}
	return &f, nil
}

// Check validates the configuration, naming the field at fault.
func (f *File) Check() error {
	if !uriPrefixPattern.MatchString(f.URIPrefix) || len(f.URIPrefix) > 0 &&
		(f.URIPrefix[0] == '/' || f.URIPrefix[len(f.URIPrefix)-1] == '/') {
		return fmt.Errorf("uriPrefix %q: accepted letters, digits, '/', '-' and '_', not starting or ending with '/'", f.URIPrefix)
	}
	if n := len(f.URIPrefix) + len("//kms/xks/v1"); n > maxURIPath {
		return fmt.Errorf("uriPrefix: the URI path /%s/kms/xks/v1 has %d characters: at most %d", f.URIPrefix, n, maxURIPath)
	}
	if len(f.Credentials) == 0 {
		return fmt.Errorf("credentials: at least one is required (`p11kms xks credential create` adds one)")
	}
	seen := map[string]bool{}
	for i, c := range f.Credentials {
		switch {
		case !accessKeyIDPattern.MatchString(c.AccessKeyID):
			return fmt.Errorf("credentials[%d].accessKeyId: accepted 20 to 30 characters A-Z and 2-7", i)
		case (c.SecretAccessKey == "") == (c.SealedSecretAccessKey == ""):
			return fmt.Errorf("credentials[%d]: give exactly one of secretAccessKey (plaintext, sealed on load) and sealedSecretAccessKey", i)
		case c.SecretAccessKey != "" && !secretPattern.MatchString(c.SecretAccessKey):
			return fmt.Errorf("credentials[%d].secretAccessKey: accepted 43 to 64 characters A-Z, a-z, 0-9, +, / and =", i)
		case len(c.SealedSecretAccessKey) > maxSealed:
			return fmt.Errorf("credentials[%d].sealedSecretAccessKey: at most %d characters (as `p11kms xks` writes it)", i, maxSealed)
		case seen[c.AccessKeyID]:
			return fmt.Errorf("credentials[%d].accessKeyId %s appears twice", i, c.AccessKeyID)
		}
		seen[c.AccessKeyID] = true
	}
	if f.FleetSize < 0 {
		return fmt.Errorf("fleetSize %d: accepted 1 or more (0: 1)", f.FleetSize)
	}
	for _, id := range f.keyIDs() {
		if !externalKeyIDPattern.MatchString(id) {
			return fmt.Errorf("keys: externalKeyId %q: accepted 1 to 128 characters A-Z, a-z, 0-9, '.', '-' and '_'", id)
		}
		if k := f.Keys[id]; k.CMK != "" && (k.Label != "" || k.Foreign) {
			return fmt.Errorf("keys.%s: cmk names a CMK: label and foreign are for token keys", id)
		}
		if l := f.Keys[id].label(id); f.Keys[id].CMK == "" && strings.HasPrefix(l, ownLabels) {
			return fmt.Errorf("keys.%s.label %q: labels starting with %s are p11kms's own keys (CMK versions, audit, health), never external keys", id, l, ownLabels)
		}
	}
	return nil
}

func (f *File) keyIDs() []string {
	ids := make([]string, 0, len(f.Keys))
	for id := range f.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// checkOpen is Check for a configuration in use: every secret opened.
func (f *File) checkOpen() error {
	if err := f.Check(); err != nil {
		return err
	}
	for i, c := range f.Credentials {
		if c.SecretAccessKey == "" {
			return fmt.Errorf("credentials[%d] (%s): the secret is sealed: load the file with LoadSealedFile", i, c.AccessKeyID)
		}
	}
	return nil
}

// secret returns the secret access key of id.
func (f *File) secret(id string) (string, bool) {
	for _, c := range f.Credentials {
		if c.AccessKeyID == id {
			return c.SecretAccessKey, true
		}
	}
	return "", false
}

// allows reports whether the key's policy allows the principal to use it
// for the KMS operation; the patterns match as in the access-keys file's
// policies (wire.Policy).
func (k Key) allows(principal, operation string) bool {
	if len(k.Principals) > 0 && !(&wire.Policy{Keys: k.Principals}).AllowsKey(principal) {
		return false
	}
	return len(k.Operations) == 0 || (&wire.Policy{Actions: k.Operations}).AllowsAction(operation)
}

// label is the token label backing the key.
func (k Key) label(externalKeyID string) string {
	if k.Label != "" {
		return k.Label
	}
	return externalKeyID
}
