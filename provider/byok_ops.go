package provider

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/wrap"
)

// ImportTokenLifetime is how long an ImportToken and its wrapping key work.
const ImportTokenLifetime = 24 * time.Hour

// maxLiveWrappingKeys bounds the wrapping key pairs one key may have in
// the token at once (each GetParametersForImport makes one).
const maxLiveWrappingKeys = 8

// importMaterialBytes is the size of Aliyun_AES_256 key material.
const importMaterialBytes = 32

// importPairs lists the accepted WrappingKeySpec and WrappingAlgorithm pairs.
var importPairs = map[string][]string{
	KeySpecRSA2048: {string(wrap.AlgRSAPKCS1v15), AlgRSAOAEPSHA1, AlgRSAOAEPSHA256},
	KeySpecECSM2:   {AlgSM2PKE},
}

// externalKey resolves the key of a BYOK operation: it must have Origin EXTERNAL.
func (s *Service) externalKey(ctx context.Context, ref string) (*keyMeta, error) {
	m, err := s.resolve(ctx, "KeyId", ref)
	if err != nil {
		return nil, err
	}
	if m.Origin != OriginExternal {
		return nil, InvalidParam("KeyId", "the key %s has Origin %s: key material is imported only into keys created with Origin %s", m.KeyId, m.Origin, OriginExternal)
	}
	if m.KeyState == StatePendingDeletion {
		return nil, NewError(CodePendingDeletion, "the key %s is pending deletion", m.KeyId)
	}
	return m, nil
}

// checkImportPair validates WrappingKeySpec and WrappingAlgorithm.
func checkImportPair(spec, alg string) error {
	algs, ok := importPairs[spec]
	if !ok {
		return InvalidParam("WrappingKeySpec", "%q: accepted %s, %s", Clip(spec, 32), KeySpecRSA2048, KeySpecECSM2)
	}
	for _, a := range algs {
		if a == alg {
			return nil
		}
	}
	return InvalidParam("WrappingAlgorithm", "%q with WrappingKeySpec %s: accepted %s", Clip(alg, 32), spec, strings.Join(algs, ", "))
}

// GetParametersForImport makes a wrapping key pair in the token (its
// private half sensitive, never extractable) and returns its public key
// with an ImportToken bound to the key, the wrapping key, the algorithm and
// an expiry 24 hours on.
func (s *Service) GetParametersForImport(ctx context.Context, req *GetParametersForImportRequest) (*GetParametersForImportResponse, error) {
	if err := checkImportPair(req.WrappingKeySpec, req.WrappingAlgorithm); err != nil {
		return nil, err
	}
	m, err := s.externalKey(ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	live, err := s.liveWrappingKeys(ctx, m.KeyId)
	if err != nil {
		return nil, err
	}
	if len(live) >= 2*maxLiveWrappingKeys { // both halves of each
		e := NewError(CodeConflict, "the key %s has %d unused import tokens: import with one of them, or wait for them to expire (%s)", m.KeyId, maxLiveWrappingKeys, ImportTokenLifetime)
		e.Param = "KeyId"
		return nil, e
	}
	t := &importToken{keyID: m.KeyId, wrappingID: uuid.New(), alg: req.WrappingAlgorithm, spec: req.WrappingKeySpec,
		expires: s.now().Add(ImportTokenLifetime).Truncate(time.Second)}
	opt := hsm.KeyPairOptions{Type: hsm.SM2, ID: t.wrappingID[:], Label: wrappingLabel(m.KeyId, t.expires)}
	if req.WrappingKeySpec == KeySpecRSA2048 {
		opt.Type, opt.Bits = hsm.RSA, 2048
	}
	kp, err := s.tok.GenerateKeyPair(ctx, opt)
	if err != nil {
		return nil, Internal("generating the wrapping key", err)
	}
	resp, err := s.importParameters(ctx, t, kp)
	if err != nil {
		s.destroyPair(ctx, kp)
		return nil, err
	}
	return resp, nil
}

// importParameters builds GetParametersForImport's response.
func (s *Service) importParameters(ctx context.Context, t *importToken, kp hsm.KeyPair) (*GetParametersForImportResponse, error) {
	pub, err := s.tok.PublicKey(ctx, kp.Public)
	if err != nil {
		return nil, Internal("reading the wrapping key", err)
	}
	der, err := wrap.MarshalPublicKeyDER(pub)
	if err != nil {
		return nil, Internal("encoding the wrapping key", err)
	}
	it, err := s.sealImportToken(ctx, t)
	if err != nil {
		return nil, err
	}
	return &GetParametersForImportResponse{KeyId: t.keyID, ImportToken: it, PublicKey: base64.StdEncoding.EncodeToString(der),
		TokenExpireTime: fmtTime(t.expires), RequestId: RequestID(ctx)}, nil
}

// wrappingKeys lists the halves of a key's wrapping key pairs in the token.
func (s *Service) wrappingKeys(ctx context.Context, keyID string) ([]hsm.ObjectHandle, error) {
	var out []hsm.ObjectHandle
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		hs, err := s.tok.FindObjects(ctx, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
		if err != nil {
			return nil, Internal("listing wrapping keys", err)
		}
		for _, h := range hs {
			a, err := s.tok.Attributes(ctx, h, hsm.CKA_LABEL)
			if err == nil && strings.HasPrefix(string(a[hsm.CKA_LABEL]), "p11kms-import/"+keyID+"/") {
				out = append(out, h)
			}
		}
	}
	return out, nil
}

// destroyWrappingKeys destroys a key's wrapping key pairs: their tokens
// can no longer be used.
func (s *Service) destroyWrappingKeys(ctx context.Context, keyID string) {
	hs, err := s.wrappingKeys(ctx, keyID)
	if err != nil {
		return
	}
	for _, h := range hs {
		_ = s.tok.DestroyObject(context.WithoutCancel(ctx), h)
	}
}

// liveWrappingKeys destroys a key's wrapping key pairs whose tokens have
// expired (their label carries the expiry) and returns the others' halves.
func (s *Service) liveWrappingKeys(ctx context.Context, keyID string) ([]hsm.ObjectHandle, error) {
	hs, err := s.wrappingKeys(ctx, keyID)
	if err != nil {
		return nil, err
	}
	var live []hsm.ObjectHandle
	for _, h := range hs {
		a, err := s.tok.Attributes(ctx, h, hsm.CKA_LABEL)
		if err != nil {
			continue // destroyed meanwhile
		}
		if _, exp, ok := parseWrappingLabel(string(a[hsm.CKA_LABEL])); ok && !s.now().Before(exp) {
			_ = s.tok.DestroyObject(context.WithoutCancel(ctx), h)
			continue
		}
		live = append(live, h)
	}
	return live, nil
}

// materialExpiry checks ValidTo (0: never) into the material's expiry.
func (s *Service) materialExpiry(n int64) (time.Time, error) {
	if n == 0 {
		return time.Time{}, nil
	}
	if n < 0 || n > 1<<40 {
		return time.Time{}, InvalidParam("ValidTo", "%d: accepted 0 (never) or a Unix time in seconds", n)
	}
	t := time.Unix(n, 0).UTC()
	if !t.After(s.now()) {
		return time.Time{}, InvalidParam("ValidTo", "%d is not in the future: accepted 0 (never) or a later Unix time", n)
	}
	return t, nil
}

// importInput is a checked ImportKeyMaterial request.
type importInput struct {
	meta    *keyMeta
	token   *importToken
	version uuid.UUID
	expire  time.Time
	ct      []byte
	pair    hsm.KeyPair
}

// checkImport validates every ImportKeyMaterial parameter and the import
// token before anything is decrypted.
func (s *Service) checkImport(ctx context.Context, req *ImportKeyMaterialRequest) (*importInput, error) {
	m, err := s.externalKey(ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	t, err := s.openImportToken(ctx, req.ImportToken)
	if err != nil {
		return nil, err
	}
	if t.keyID != m.KeyId {
		return nil, InvalidParam("ImportToken", "was issued for another key, not %s; call GetParametersForImport with this KeyId", m.KeyId)
	}
	if !s.now().Before(t.expires) {
		return nil, InvalidParam("ImportToken", "expired at %s; call GetParametersForImport for a new one", fmtTime(t.expires))
	}
	in := &importInput{meta: m, token: t}
	if in.expire, err = s.materialExpiry(req.ValidTo); err != nil {
		return nil, err
	}
	if in.ct, err = decodeB64("EncryptedKeyMaterial", req.EncryptedKeyMaterial, 4096); err != nil {
		return nil, err
	}
	if in.version, err = uuid.Parse(m.PrimaryKeyVersion); err != nil {
		return nil, Internal("reading key metadata", err)
	}
	if err := needsMaterial(m, s.materialExpired(m)); err != nil {
		return nil, err
	}
	kp, err := s.tok.FindKeyPairByID(ctx, t.wrappingID[:])
	if errors.Is(err, hsm.ErrNotFound) {
		return nil, InvalidParam("ImportToken", "has been used, or its wrapping key is gone; call GetParametersForImport for a new one")
	}
	if err != nil {
		return nil, Internal("finding the wrapping key", err)
	}
	in.pair = kp
	return in, nil
}

// needsMaterial refuses an import into a key that has usable material.
func needsMaterial(m *keyMeta, expired bool) error {
	if m.KeyState == StatePendingImport || expired {
		return nil
	}
	e := NewError("Rejected."+m.KeyState, "the key %s is %s and has key material: DeleteKeyMaterial first to import again", m.KeyId, m.KeyState)
	e.HTTPStatus = http.StatusConflict
	return e
}

// badMaterial is the one answer for EncryptedKeyMaterial that does not
// decrypt to 32 bytes under the token's wrapping key.
func badMaterial(t *importToken) *Error {
	return InvalidParam("EncryptedKeyMaterial", "does not decrypt with %s under this ImportToken's wrapping key to %d bytes of key material", t.alg, importMaterialBytes)
}

// ImportKeyMaterial decrypts the key material inside the token (see
// decryptInToken), checks it is 32 bytes (and, imported again, the same
// material: its check value), stores it as the key's non-extractable AES
// version and enables the key; the wrapping key is then destroyed, so the
// import token cannot be used again. On any error the token holds what it
// held before.
func (s *Service) ImportKeyMaterial(ctx context.Context, req *ImportKeyMaterialRequest) (*RequestIdResponse, error) {
	in, err := s.checkImport(ctx, req)
	if err != nil {
		return nil, err
	}
	bits := 0
	if in.token.spec == KeySpecRSA2048 {
		bits = 2048
	}
	pt, err := s.decryptInToken(ctx, in.pair, bits, in.token.alg, in.ct)
	if errors.Is(err, errAsymDecrypt) {
		return nil, badMaterial(in.token)
	}
	if err != nil {
		return nil, err
	}
	defer s.plain.put(pt)
	if len(pt) != importMaterialBytes {
		return nil, badMaterial(in.token)
	}
	kcv, _ := wrap.KCV(pt)
	if in.meta.MaterialKCV != "" && subtle.ConstantTimeCompare([]byte(kcv), []byte(in.meta.MaterialKCV)) != 1 {
		return nil, InvalidParam("EncryptedKeyMaterial", "is not the key material this key had: a key takes the same material again after DeleteKeyMaterial or expiry")
	}
	if err := s.storeMaterial(ctx, in, pt, kcv); err != nil {
		return nil, err
	}
	s.destroyWrappingKeys(ctx, in.meta.KeyId)
	return &RequestIdResponse{RequestId: RequestID(ctx), keyID: in.meta.KeyId}, nil
}

// storeMaterial creates the version key from the material and names it in
// the metadata; a failed metadata write destroys the key again.
func (s *Service) storeMaterial(ctx context.Context, in *importInput, pt []byte, kcv string) error {
	keyID := in.meta.KeyId
	s.destroyVersionObjects(ctx, in.version) // what an interrupted DeleteKeyMaterial left
	h, err := s.tok.CreateSecretKey(ctx, pkcs11.CKK_AES, pt, hsm.SecretKeyOptions{ID: in.version[:],
		Label: versionLabel(keyID, in.version.String()), Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		return Internal("storing the key material", err)
	}
	_, err = s.updateKey(ctx, keyID, func(m *keyMeta) error {
		if err := needsMaterial(m, s.materialExpired(m)); err != nil {
			return err
		}
		m.KeyState, m.MaterialExpire, m.MaterialKCV = StateEnabled, in.expire, kcv
		return nil
	})
	if err != nil {
		_ = s.tok.DestroyObject(context.WithoutCancel(ctx), h)
		return err
	}
	s.forgetKey(keyID)
	s.rememberVersion(in.version, keyID, h)
	return nil
}

// destroyVersionObjects destroys every token object of a version.
func (s *Service) destroyVersionObjects(ctx context.Context, id uuid.UUID) {
	hs, err := s.tok.ObjectsByID(ctx, id[:])
	if err != nil {
		return
	}
	for _, h := range hs {
		_ = s.tok.DestroyObject(context.WithoutCancel(ctx), h)
	}
}

// DeleteKeyMaterial destroys an EXTERNAL key's material: the key becomes
// PendingImport and works again only once the same material is imported.
func (s *Service) DeleteKeyMaterial(ctx context.Context, req *KeyIdRequest) (*RequestIdResponse, error) {
	m, err := s.externalKey(ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	if _, err := s.updateKey(ctx, m.KeyId, func(m *keyMeta) error {
		if m.KeyState == StatePendingDeletion {
			return NewError(CodePendingDeletion, "the key %s is pending deletion", m.KeyId)
		}
		m.KeyState, m.MaterialExpire = StatePendingImport, time.Time{}
		return nil
	}); err != nil {
		return nil, err
	}
	s.forgetKey(m.KeyId)
	if vid, err := uuid.Parse(m.PrimaryKeyVersion); err == nil {
		s.destroyVersionObjects(ctx, vid)
	}
	return &RequestIdResponse{RequestId: RequestID(ctx), keyID: m.KeyId}, nil
}
