package xks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
)

// Metadata is a request's requestMetadata (Appendix B): audited, and what
// secondary authorization decides on. Fields AWS may add later are ignored.
type Metadata struct {
	AWSPrincipalArn string `json:"awsPrincipalArn"`
	AWSSourceVpc    string `json:"awsSourceVpc"`
	AWSSourceVpce   string `json:"awsSourceVpce"`
	KMSKeyArn       string `json:"kmsKeyArn"`
	KMSOperation    string `json:"kmsOperation"`
	KMSRequestID    string `json:"kmsRequestId"`
	KMSViaService   string `json:"kmsViaService"`
}

// body is every field any of the four requests carries.
type body struct {
	RequestMetadata *Metadata `json:"requestMetadata"`

	Plaintext           *string `json:"plaintext"`
	AAD                 *string `json:"additionalAuthenticatedData"`
	EncryptionAlgorithm *string `json:"encryptionAlgorithm"`
	CDIVAlgorithm       *string `json:"ciphertextDataIntegrityValueAlgorithm"`

	Ciphertext         *string `json:"ciphertext"`
	CiphertextMetadata *string `json:"ciphertextMetadata"`
	IV                 *string `json:"initializationVector"`
	Tag                *string `json:"authenticationTag"`
}

// Limits of the spec (the sizes a proxy must accept) and of this proxy.
const (
	MaxPlaintext          = 4300 // plaintext and ciphertext bytes
	MaxAAD                = 8192 // additionalAuthenticatedData bytes
	MaxCiphertextMetadata = 20
	maxArn                = 2048 // every requestMetadata string
)

// decodeBody parses the JSON body and checks requestMetadata for op.
func decodeBody(raw []byte, op string) (*body, error) {
	b, err := parseBody(raw)
	if err != nil {
		return nil, err
	}
	if err := b.checkMetadata(op); err != nil {
		return nil, err
	}
	return b, nil
}

// parseBody parses the JSON body: one object, nothing after it.
func parseBody(raw []byte) (*body, error) {
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&b); err != nil {
		return nil, fail(ValidationException, "the request body is not a JSON object: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail(ValidationException, "the request body holds more than one JSON value")
	}
	return &b, nil
}

// jsonProblem names what is wrong with a body without echoing it.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "field " + te.Field + " must be a " + te.Type.String()
	}
	return "malformed JSON"
}

// checkMetadata requires the requestMetadata fields the spec makes
// REQUIRED for op: kmsRequestId and kmsOperation always, awsPrincipalArn
// but for GetHealthStatus, kmsKeyArn for Encrypt and Decrypt.
func (b *body) checkMetadata(op string) error {
	m := b.RequestMetadata
	if m == nil {
		return fail(ValidationException, "requestMetadata is required")
	}
	type field struct {
		name, v string
		need    bool
	}
	keyOp := op != OpGetHealthStatus
	for _, f := range []field{
		{"kmsRequestId", m.KMSRequestID, true}, {"kmsOperation", m.KMSOperation, true},
		{"awsPrincipalArn", m.AWSPrincipalArn, keyOp}, {"kmsKeyArn", m.KMSKeyArn, op == OpEncrypt || op == OpDecrypt},
		{"awsSourceVpc", m.AWSSourceVpc, false}, {"awsSourceVpce", m.AWSSourceVpce, false}, {"kmsViaService", m.KMSViaService, false},
	} {
		if f.need && f.v == "" {
			return fail(ValidationException, "requestMetadata.%s is required", f.name)
		}
		if len(f.v) > maxArn {
			return fail(ValidationException, "requestMetadata.%s: at most %d characters", f.name, maxArn)
		}
	}
	return nil
}

// decodeB64 decodes a required (or, with optional, absent-is-nil) Base64 field
// of at most max bytes: ValidationException naming it, or
// UnsupportedOperationException past this proxy's limit.
func decodeB64(name string, v *string, optional bool, max int) ([]byte, error) {
	if v == nil {
		if optional {
			return nil, nil
		}
		return nil, fail(ValidationException, "%s is required", name)
	}
	if base64.StdEncoding.DecodedLen(len(*v)) > max+2 {
		return nil, fail(UnsupportedOperationException, "%s: at most %d bytes are supported", name, max)
	}
	b, err := base64.StdEncoding.DecodeString(*v)
	if err != nil {
		return nil, fail(ValidationException, "%s: not standard Base64", name)
	}
	if len(b) > max {
		return nil, fail(UnsupportedOperationException, "%s: at most %d bytes are supported", name, max)
	}
	return b, nil
}

// algorithm checks a required (or optional) string field against the one
// value v1 accepts.
func algorithm(name string, v *string, optional bool, accepted string) (bool, error) {
	switch {
	case v == nil && optional:
		return false, nil
	case v == nil:
		return false, fail(ValidationException, "%s is required: accepted %s", name, accepted)
	case *v != accepted:
		return false, fail(ValidationException, "%s: accepted %s", name, accepted)
	}
	return true, nil
}

// encryptInput is a checked Encrypt request.
type encryptInput struct {
	plaintext, aad []byte
	cdiv           bool
}

func (b *body) encryptInput() (*encryptInput, error) {
	if _, err := algorithm("encryptionAlgorithm", b.EncryptionAlgorithm, false, "AES_GCM"); err != nil {
		return nil, err
	}
	cdiv, err := algorithm("ciphertextDataIntegrityValueAlgorithm", b.CDIVAlgorithm, true, "SHA_256")
	if err != nil {
		return nil, err
	}
	pt, err := decodeB64("plaintext", b.Plaintext, false, MaxPlaintext)
	if err != nil {
		return nil, err
	}
	if len(pt) == 0 {
		return nil, fail(ValidationException, "plaintext: 1 to %d bytes", MaxPlaintext)
	}
	aad, err := decodeB64("additionalAuthenticatedData", b.AAD, true, MaxAAD)
	if err != nil {
		clear(pt)
		return nil, err
	}
	return &encryptInput{plaintext: pt, aad: aad, cdiv: cdiv}, nil
}

// decryptInput is a checked Decrypt request.
type decryptInput struct {
	ciphertext, aad, metadata, iv, tag []byte
}

func (b *body) decryptInput() (*decryptInput, error) {
	if _, err := algorithm("encryptionAlgorithm", b.EncryptionAlgorithm, false, "AES_GCM"); err != nil {
		return nil, err
	}
	var d decryptInput
	for _, f := range []struct {
		name     string
		v        *string
		optional bool
		max      int
		out      *[]byte
	}{
		{"ciphertext", b.Ciphertext, false, MaxPlaintext, &d.ciphertext},
		{"additionalAuthenticatedData", b.AAD, true, MaxAAD, &d.aad},
		{"ciphertextMetadata", b.CiphertextMetadata, true, MaxCiphertextMetadata, &d.metadata},
		{"initializationVector", b.IV, false, 16, &d.iv},
		{"authenticationTag", b.Tag, false, 16, &d.tag},
	} {
		v, err := decodeB64(f.name, f.v, f.optional, f.max)
		if err != nil {
			if f.name == "ciphertextMetadata" {
				return nil, fail(ValidationException, "ciphertextMetadata: at most %d bytes of standard Base64", MaxCiphertextMetadata)
			}
			return nil, err
		}
		*f.out = v
	}
	switch {
	case len(d.ciphertext) == 0:
		return nil, fail(ValidationException, "ciphertext: 1 to %d bytes", MaxPlaintext)
	case len(d.iv) != 12 && len(d.iv) != 16:
		return nil, fail(ValidationException, "initializationVector: accepted 12 or 16 bytes")
	case len(d.tag) != 16:
		return nil, fail(ValidationException, "authenticationTag: accepted 16 bytes")
	}
	return &d, nil
}
