package provider

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"unsafe"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/wrap"
)

// exportAlgorithms are the WrappingAlgorithm values of the core's own
// GenerateAndExportDataKey and ExportDataKey requests.
var exportAlgorithms = []string{"RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "SM2PKE"}

// wrapParams are the core's request parameters for wrap's neutral fields.
var wrapParams = map[wrap.Field]string{wrap.FieldPublicKey: "PublicKeyBlob", wrap.FieldKeySpec: "WrappingKeySpec",
	wrap.FieldAlgorithm: "WrappingAlgorithm", wrap.FieldPlaintext: "Plaintext", wrap.FieldCiphertext: "CiphertextBlob",
	wrap.FieldContext: "EncryptionContext", wrap.FieldKey: "Key"}

// FromWrap turns wrap's parameter errors (a *wrap.ParamError) into
// InvalidParameter naming the core's parameter for the field; other errors
// pass unchanged.
func FromWrap(err error) error { return FromWrapAs(err, nil) }

// FromWrapAs is FromWrap with a dialect's names for wrap's fields (its
// error map); a field names does not list keeps the core's name.
func FromWrapAs(err error, names map[wrap.Field]string) error {
	var pe *wrap.ParamError
	if !errors.As(err, &pe) {
		return err
	}
	param, ok := names[pe.Field]
	if !ok {
		param = wrapParams[pe.Field]
	}
	return InvalidParam(param, "%s", pe.Msg)
}

// primaryKey is an Enabled key's primary version, ready to seal with.
type primaryKey struct {
	meta    *keyMeta
	version uuid.UUID
	ref     versionRef
	found   bool
}

// primary resolves ref to an Enabled key and its primary version, rotating
// first if automatic rotation is due.
func (s *Service) primary(ctx context.Context, ref string) (*primaryKey, error) {
	m, err := s.resolve(ctx, "KeyId", ref)
	if err != nil {
		return nil, err
	}
	if err := s.usableNow(m); err != nil {
		return nil, err
	}
	if err := symmetricOnly(m); err != nil {
		return nil, err
	}
	if s.rotationDue(m) {
		if _, err := s.rotate(ctx, m, s.rotationDue); err != nil {
			return nil, err
		}
		if m, err = s.readKey(ctx, m.KeyId); err != nil {
			return nil, err
		}
	}
	vid, err := uuid.Parse(m.PrimaryKeyVersion)
	if err != nil {
		return nil, Internal("key metadata", err)
	}
	return &primaryKey{meta: m, version: vid}, nil
}

// ensureHandle finds the version key object.
func (s *Service) ensureHandle(ctx context.Context, k *primaryKey) error {
	if k.found {
		return nil
	}
	v, err := s.versionHandle(ctx, k.version)
	if errors.Is(err, errNoVersion) {
		return Internal("finding the key version", errors.New("the primary version's key object is missing from the token"))
	}
	if err != nil {
		return err
	}
	k.ref, k.found = v, true
	return nil
}

// sealWith encrypts pt under the key's primary version with a fresh IV and
// returns the CiphertextBlob bytes.
func (s *Service) sealWith(ctx context.Context, k *primaryKey, iv, pt []byte, ec wrap.EncryptionContext) ([]byte, error) {
	if err := s.ensureHandle(ctx, k); err != nil {
		return nil, err
	}
	b := &wrap.Blob{VersionID: k.version}
	copy(b.IV[:], iv)
	aad := wrap.AAD(b.Header(), ec)
	var sealed []byte
	err := s.withVersionKey(ctx, k.version, k.ref, func(h hsm.ObjectHandle) error {
		var err error
		sealed, err = s.tok.EncryptGCM(ctx, h, b.IV[:], pt, aad)
		return err
	})
	if err != nil {
		s.forgetOnTokenError(k.meta.KeyId, err)
		return nil, Internal("encrypting in the token", err)
	}
	b.Sealed = sealed
	return b.Marshal(), nil
}

// newDataKey draws n key bytes and the IV from one C_GenerateRandom and
// seals the key. The returned key is a pool buffer: the caller must give it
// back (s.plain.put), which clears it.
func (s *Service) newDataKey(ctx context.Context, k *primaryKey, n int, ec wrap.EncryptionContext) (dk, blob []byte, err error) {
	if err := s.ensureHandle(ctx, k); err != nil {
		return nil, nil, err
	}
	r, err := s.tok.Random(ctx, n+hsm.GCMIVSize)
	if err != nil {
		return nil, nil, Internal("drawing random bytes from the token", err)
	}
	dk, iv := s.plain.fill(r[:n]), r[n:]
	blob, err = s.sealWith(ctx, k, iv, dk, ec)
	if err != nil {
		s.plain.put(dk)
		return nil, nil, err
	}
	return dk, blob, nil
}

// open decrypts a base64 CiphertextBlob: the version it names (even if not
// primary), its key's state, and the GCM tag under the context's AAD.
func (s *Service) open(ctx context.Context, blobB64 string, ec wrap.EncryptionContext, ecParam string) (*keyMeta, uuid.UUID, []byte, error) {
	if blobB64 == "" {
		return nil, uuid.UUID{}, nil, InvalidParam("CiphertextBlob", "is required")
	}
	if err := checkContext(ecParam, ec); err != nil {
		return nil, uuid.UUID{}, nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(blobB64)
	if err != nil {
		return nil, uuid.UUID{}, nil, InvalidCiphertext(err)
	}
	b, err := wrap.ParseBlob(raw)
	if err != nil {
		return nil, uuid.UUID{}, nil, InvalidCiphertext(err)
	}
	v, err := s.versionHandle(ctx, b.VersionID)
	if errors.Is(err, errNoVersion) {
		return nil, uuid.UUID{}, nil, InvalidCiphertext(err)
	}
	if err != nil {
		return nil, uuid.UUID{}, nil, err
	}
	m, err := s.readKey(ctx, v.keyID)
	if err != nil {
		if ErrorCode(err) == CodeKeyNotFound {
			return nil, uuid.UUID{}, nil, InvalidCiphertext(err)
		}
		return nil, uuid.UUID{}, nil, err
	}
	if err := s.usableNow(m); err != nil {
		return nil, uuid.UUID{}, nil, err
	}
	aad := wrap.AAD(b.Header(), ec)
	var pt []byte
	err = s.withVersionKey(ctx, b.VersionID, v, func(h hsm.ObjectHandle) error {
		var err error
		pt, err = s.tok.DecryptGCM(ctx, h, b.IV[:], b.Sealed, aad)
		return err
	})
	if errors.Is(err, hsm.ErrDecryption) {
		return nil, uuid.UUID{}, nil, InvalidCiphertext(err)
	}
	if err != nil {
		s.forgetOnTokenError(v.keyID, err)
		return nil, uuid.UUID{}, nil, Internal("decrypting in the token", err)
	}
	return m, b.VersionID, s.plain.fill(pt), nil
}

// exporter is a validated public key and algorithm.
type exporter struct {
	alg *wrap.Algorithm
	pub crypto.PublicKey
}

// wrappingExporter validates the core's PublicKeyBlob, WrappingKeySpec and
// WrappingAlgorithm (parsed once per distinct set).
func wrappingExporter(blob, spec, alg string) (*exporter, error) {
	p, err := CachedExporter([]string{"core", blob, spec, alg}, func() (*PublicKeyExporter, error) {
		ex, err := parseWrappingExporter(blob, spec, alg)
		if err != nil {
			return nil, err
		}
		return &PublicKeyExporter{ex: ex, param: "PublicKeyBlob"}, nil
	})
	if err != nil {
		return nil, err
	}
	return p.ex, nil
}

func parseWrappingExporter(blob, spec, alg string) (*exporter, error) {
	if spec == "" {
		return nil, InvalidParam("WrappingKeySpec", "is required: accepted RSA_2048, EC_SM2 (RSA_3072, RSA_4096: p11kms extension)")
	}
	ks, err := wrap.ParseKeySpec(spec)
	if err != nil {
		return nil, FromWrap(err)
	}
	if !slices.Contains(exportAlgorithms, alg) {
		return nil, InvalidParam("WrappingAlgorithm", "%q: accepted %s", Clip(alg, 40), strings.Join(exportAlgorithms, ", "))
	}
	a, err := wrap.LookupAlgorithm(alg)
	if err != nil {
		return nil, FromWrap(err)
	}
	if err := a.CompatibleWith(ks); err != nil {
		return nil, FromWrap(err)
	}
	if blob == "" {
		return nil, InvalidParam("PublicKeyBlob", "is required: base64 DER SubjectPublicKeyInfo")
	}
	pub, err := wrap.ParsePublicKeyBlob(blob, ks)
	if err != nil {
		return nil, FromWrap(err)
	}
	return &exporter{alg: a, pub: pub}, nil
}

func (e *exporter) check(n int) error {
	if max := e.alg.MaxPlaintext(e.pub); n > max {
		return InvalidParam("NumberOfBytes", "%d bytes do not fit %s under this key: at most %d", n, e.alg.Name, max)
	}
	return nil
}

func (e *exporter) export(dk []byte) (string, error) {
	ct, err := e.alg.Encrypt(rand.Reader, e.pub, dk)
	if err != nil {
		return "", FromWrap(err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

func kcvOf(dk []byte) string {
	if n := len(dk); n != 16 && n != 24 && n != 32 {
		return ""
	}
	k, _ := wrap.KCV(dk)
	return k
}

func dryRun() error { return NewError(CodeDryRun, "the request would have succeeded (DryRun)") }

// issueDataKey is what both data-key generators share: the key length,
// the context, an optional exporter (checked against the length), the
// Enabled primary version, DryRun, then one C_GenerateRandom for key and
// IV and the CMK seal. dk is a pool buffer the caller must put back.
func (s *Service) issueDataKey(ctx context.Context, keyRef, keySpec string, numberOfBytes *int, ec wrap.EncryptionContext,
	exporterOf func() (*exporter, error), dry bool) (k *primaryKey, ex *exporter, dk, blob []byte, err error) {
	n, err := dataKeyLength(keySpec, numberOfBytes)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := checkContext("EncryptionContext", ec); err != nil {
		return nil, nil, nil, nil, err
	}
	if exporterOf != nil {
		if ex, err = exporterOf(); err != nil {
			return nil, nil, nil, nil, err
		}
		if err := ex.check(n); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	if k, err = s.primary(ctx, keyRef); err != nil {
		return nil, nil, nil, nil, err
	}
	if dry {
		return nil, nil, nil, nil, dryRun()
	}
	dk, blob, err = s.newDataKey(ctx, k, n, ec)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return k, ex, dk, blob, nil
}

// GenerateDataKey returns a new data key in plaintext and under the CMK.
// With an Exporter, Plaintext is the key encrypted under its public key
// instead.
func (s *Service) GenerateDataKey(ctx context.Context, req *GenerateDataKeyRequest) (*GenerateDataKeyResponse, error) {
	var exporterOf func() (*exporter, error)
	if req.Exporter != nil {
		exporterOf = func() (*exporter, error) { return req.Exporter.ex, nil }
	}
	k, ex, dk, blob, err := s.issueDataKey(ctx, req.KeyId, req.KeySpec, req.NumberOfBytes, req.EncryptionContext, exporterOf, req.DryRun)
	if err != nil {
		return nil, err
	}
	defer s.plain.put(dk)
	resp := &GenerateDataKeyResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(),
		CiphertextBlob: base64.StdEncoding.EncodeToString(blob), KeyCheckValue: kcvOf(dk), RequestId: RequestID(ctx)}
	if ex != nil {
		if resp.Plaintext, err = ex.export(dk); err != nil {
			return nil, err
		}
	} else {
		resp.Plaintext = base64.StdEncoding.EncodeToString(dk)
	}
	return resp, nil
}

// GenerateDataKeyWithoutPlaintext returns a new data key only under the CMK.
func (s *Service) GenerateDataKeyWithoutPlaintext(ctx context.Context, req *GenerateDataKeyWithoutPlaintextRequest) (*GenerateDataKeyResponse, error) {
	k, _, dk, blob, err := s.issueDataKey(ctx, req.KeyId, req.KeySpec, req.NumberOfBytes, req.EncryptionContext, nil, req.DryRun)
	if err != nil {
		return nil, err
	}
	defer s.plain.put(dk)
	return &GenerateDataKeyResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(),
		CiphertextBlob: base64.StdEncoding.EncodeToString(blob), KeyCheckValue: kcvOf(dk), RequestId: RequestID(ctx)}, nil
}

// GenerateAndExportDataKey returns a new data key under the CMK
// (CiphertextBlob) and under the caller's public key (ExportedDataKey).
func (s *Service) GenerateAndExportDataKey(ctx context.Context, req *GenerateAndExportDataKeyRequest) (*ExportResponse, error) {
	k, ex, dk, blob, err := s.issueDataKey(ctx, req.KeyId, req.KeySpec, req.NumberOfBytes, req.EncryptionContext,
		func() (*exporter, error) {
			return wrappingExporter(req.PublicKeyBlob, req.WrappingKeySpec, req.WrappingAlgorithm)
		}, req.DryRun)
	if err != nil {
		return nil, err
	}
	defer s.plain.put(dk)
	exported, err := ex.export(dk)
	if err != nil {
		return nil, err
	}
	return &ExportResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(),
		CiphertextBlob: base64.StdEncoding.EncodeToString(blob), ExportedDataKey: exported,
		KeyCheckValue: kcvOf(dk), RequestId: RequestID(ctx)}, nil
}

// ExportDataKey re-wraps the data key of a CiphertextBlob under a public key.
func (s *Service) ExportDataKey(ctx context.Context, req *ExportDataKeyRequest) (*ExportResponse, error) {
	ex, err := wrappingExporter(req.PublicKeyBlob, req.WrappingKeySpec, req.WrappingAlgorithm)
	if err != nil {
		return nil, err
	}
	m, vid, dk, err := s.open(ctx, req.CiphertextBlob, req.EncryptionContext, "EncryptionContext")
	if err != nil {
		return nil, err
	}
	defer s.plain.put(dk)
	if req.DryRun {
		return nil, dryRun()
	}
	if err := ex.check(len(dk)); err != nil {
		return nil, err
	}
	exported, err := ex.export(dk)
	if err != nil {
		return nil, err
	}
	return &ExportResponse{KeyId: m.KeyId, KeyVersionId: vid.String(), ExportedDataKey: exported,
		KeyCheckValue: kcvOf(dk), RequestId: RequestID(ctx)}, nil
}

// Encrypt encrypts up to 6 KiB (base64 Plaintext) under a CMK.
func (s *Service) Encrypt(ctx context.Context, req *EncryptRequest) (*EncryptResponse, error) {
	pt, err := s.decodePlaintext(req.Plaintext)
	if err != nil {
		return nil, err
	}
	defer s.plain.put(pt)
	if err := checkContext("EncryptionContext", req.EncryptionContext); err != nil {
		return nil, err
	}
	k, err := s.primary(ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		return nil, dryRun()
	}
	iv, err := s.tok.Random(ctx, hsm.GCMIVSize)
	if err != nil {
		return nil, Internal("drawing random bytes from the token", err)
	}
	blob, err := s.sealWith(ctx, k, iv, pt, req.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return &EncryptResponse{KeyId: k.meta.KeyId, KeyVersionId: k.version.String(),
		CiphertextBlob: base64.StdEncoding.EncodeToString(blob), RequestId: RequestID(ctx)}, nil
}

// decodePlaintext decodes Encrypt's base64 Plaintext straight into a pool
// buffer (the caller puts it back). The size is checked from the encoded
// length first, so an oversized request costs no decoding.
func (s *Service) decodePlaintext(b64 string) ([]byte, error) {
	if len(b64)%4 != 0 { // padded base64 comes in groups of 4; say so rather than give a size
		return nil, InvalidParam("Plaintext", "is not valid base64")
	}
	bound := base64.StdEncoding.DecodedLen(len(b64))
	if n := bound - strings.Count(b64[max(0, len(b64)-2):], "="); n < 1 || n > MaxPlaintextBytes {
		return nil, InvalidParam("Plaintext", "%d bytes: accepted 1 to %d", n, MaxPlaintextBytes)
	}
	pt := s.plain.get(bound)
	// Read the string in place: a []byte conversion would leave one more
	// copy of the plaintext (as base64) that nothing clears.
	n, err := base64.StdEncoding.Decode(pt, unsafe.Slice(unsafe.StringData(b64), len(b64)))
	if err != nil {
		s.plain.put(pt)
		return nil, InvalidParam("Plaintext", "is not valid base64")
	}
	return pt[:n], nil
}

// Decrypt decrypts a CiphertextBlob with the version that made it.
func (s *Service) Decrypt(ctx context.Context, req *DecryptRequest) (*DecryptResponse, error) {
	m, vid, pt, err := s.open(ctx, req.CiphertextBlob, req.EncryptionContext, "EncryptionContext")
	if err != nil {
		return nil, err
	}
	defer s.plain.put(pt)
	if req.DryRun {
		return nil, dryRun()
	}
	return &DecryptResponse{KeyId: m.KeyId, KeyVersionId: vid.String(), Plaintext: base64.StdEncoding.EncodeToString(pt),
		KeyCheckValue: kcvOf(pt), RequestId: RequestID(ctx)}, nil
}

// ReEncrypt decrypts a blob and encrypts its plaintext under another key
// and/or context; the plaintext never leaves the service, in any form.
func (s *Service) ReEncrypt(ctx context.Context, req *ReEncryptRequest) (*ReEncryptResponse, error) {
	if req.DestinationKeyId == "" {
		return nil, InvalidParam("DestinationKeyId", "is required: a key id, alias or ARN")
	}
	if err := checkContext("DestinationEncryptionContext", req.DestinationEncryptionContext); err != nil {
		return nil, err
	}
	dest, err := s.primary(ctx, req.DestinationKeyId)
	if err != nil {
		return nil, err
	}
	m, vid, pt, err := s.open(ctx, req.CiphertextBlob, req.SourceEncryptionContext, "SourceEncryptionContext")
	if err != nil {
		return nil, err
	}
	defer s.plain.put(pt)
	if req.DryRun {
		return nil, dryRun()
	}
	resp := &ReEncryptResponse{SourceKeyId: m.KeyId, SourceKeyVersionId: vid.String(), RequestId: RequestID(ctx)}
	iv, err := s.tok.Random(ctx, hsm.GCMIVSize)
	if err != nil {
		return nil, Internal("drawing random bytes from the token", err)
	}
	blob, err := s.sealWith(ctx, dest, iv, pt, req.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	resp.KeyId, resp.KeyVersionId = dest.meta.KeyId, dest.version.String()
	resp.CiphertextBlob = base64.StdEncoding.EncodeToString(blob)
	return resp, nil
}

// BlobKeyId returns the id of the key whose version made a CiphertextBlob,
// without decrypting it (for access policies). An unparsable blob or an
// unknown version is InvalidCiphertext.
func (s *Service) BlobKeyId(ctx context.Context, blobB64 string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(blobB64)
	if err != nil {
		return "", InvalidCiphertext(err)
	}
	b, err := wrap.ParseBlob(raw)
	if err != nil {
		return "", InvalidCiphertext(err)
	}
	v, err := s.versionHandle(ctx, b.VersionID)
	if errors.Is(err, errNoVersion) {
		return "", InvalidCiphertext(err)
	}
	if err != nil {
		return "", err
	}
	return v.keyID, nil
}
