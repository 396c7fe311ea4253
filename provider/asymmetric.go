package provider

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
)

// Asymmetric key specs and the signing usage.
const (
	KeySpecRSA2048 = "RSA_2048"
	KeySpecRSA3072 = "RSA_3072"
	KeySpecRSA4096 = "RSA_4096"
	KeySpecECP256  = "EC_P256"
	KeySpecECP256K = "EC_P256K"
	KeySpecECSM2   = "EC_SM2"
	KeyUsageSign   = "SIGN/VERIFY"
)

// Asymmetric algorithms, as the API spells them.
const (
	AlgRSAOAEPSHA1     = "RSAES_OAEP_SHA_1"
	AlgRSAOAEPSHA256   = "RSAES_OAEP_SHA_256"
	AlgSM2PKE          = "SM2PKE"
	AlgRSAPSSSHA256    = "RSA_PSS_SHA_256"
	AlgRSAPKCS1SHA256  = "RSA_PKCS1_SHA_256"
	AlgECDSASHA256     = "ECDSA_SHA_256"
	AlgSM2DSA          = "SM2DSA"
	sm2DSAUnsupportedM = "SM2DSA needs an SM2 signature mechanism (GM/T 0003.2 over SM3 Z(A)‖M), which this token (SoftHSM2) does not have, and it cannot be built from CKM_ECDSA"
)

// asymSpec is one asymmetric key spec: its key pair and, per usage, the
// algorithms it accepts.
type asymSpec struct {
	name    string
	bits    int       // RSA
	curve   hsm.Curve // EC
	encrypt []string  // algorithms with ENCRYPT/DECRYPT; nil: the usage is not offered
	sign    []string  // algorithms with SIGN/VERIFY
}

var asymSpecs = []asymSpec{
	{name: KeySpecRSA2048, bits: 2048, encrypt: []string{AlgRSAOAEPSHA1, AlgRSAOAEPSHA256}, sign: []string{AlgRSAPSSSHA256, AlgRSAPKCS1SHA256}},
	{name: KeySpecRSA3072, bits: 3072, encrypt: []string{AlgRSAOAEPSHA1, AlgRSAOAEPSHA256}, sign: []string{AlgRSAPSSSHA256, AlgRSAPKCS1SHA256}},
	{name: KeySpecRSA4096, bits: 4096, encrypt: []string{AlgRSAOAEPSHA1, AlgRSAOAEPSHA256}, sign: []string{AlgRSAPSSSHA256, AlgRSAPKCS1SHA256}},
	{name: KeySpecECP256, curve: hsm.CurveP256, sign: []string{AlgECDSASHA256}},
	{name: KeySpecECP256K, curve: hsm.CurveSecp256k1, sign: []string{AlgECDSASHA256}},
	{name: KeySpecECSM2, curve: hsm.CurveSM2, encrypt: []string{AlgSM2PKE}, sign: []string{AlgSM2DSA}},
}

// lookupAsymSpec returns the asymmetric spec named name.
func lookupAsymSpec(name string) (asymSpec, bool) {
	i := slices.IndexFunc(asymSpecs, func(a asymSpec) bool { return a.name == name })
	if i < 0 {
		return asymSpec{}, false
	}
	return asymSpecs[i], true
}

// keySpecNames lists every key spec, for error messages.
func keySpecNames() string {
	names := []string{KeySpecAES256}
	for _, a := range asymSpecs {
		names = append(names, a.name)
	}
	return strings.Join(names, ", ")
}

// usages lists the KeyUsage values the spec offers.
func (a asymSpec) usages() []string {
	var out []string
	if a.encrypt != nil {
		out = append(out, KeyUsageEncrypt)
	}
	if a.sign != nil {
		out = append(out, KeyUsageSign)
	}
	return out
}

// algorithms returns the algorithms of the usage.
func (a asymSpec) algorithms(usage string) []string {
	if usage == KeyUsageSign {
		return a.sign
	}
	return a.encrypt
}

// checkAsymUsage validates KeyUsage for an asymmetric spec ("" means the
// spec's first usage) and returns it.
func checkAsymUsage(spec asymSpec, usage string) (string, error) {
	offered := spec.usages()
	if usage == "" {
		usage = offered[0]
	}
	if !slices.Contains(offered, usage) {
		return "", InvalidParam("KeyUsage", "%q with KeySpec %s: accepted %s", Clip(usage, 32), spec.name, strings.Join(offered, ", "))
	}
	if spec.name == KeySpecECSM2 && usage == KeyUsageSign {
		e := NewError(CodeUnsupportedOp, "KeyUsage: %s with KeySpec %s: %s", KeyUsageSign, KeySpecECSM2, sm2DSAUnsupportedM)
		e.Param = "KeyUsage"
		return "", e
	}
	return usage, nil
}

// asymRef is a cached asymmetric version: its key and its key pair.
type asymRef struct {
	keyID string
	pair  hsm.KeyPair
}

// asymCache holds the key-pair handles of asymmetric versions, by version ID.
type asymCache struct {
	mu sync.Mutex
	m  map[[16]byte]asymRef
}

func (c *asymCache) get(id [16]byte) (asymRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[id]
	return r, ok
}

func (c *asymCache) put(id [16]byte, r asymRef) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[[16]byte]asymRef{}
	}
	c.m[id] = r
	c.mu.Unlock()
}

// forget drops every version of a key.
func (c *asymCache) forget(keyID string) {
	c.mu.Lock()
	for id, r := range c.m {
		if r.keyID == keyID {
			delete(c.m, id)
		}
	}
	c.mu.Unlock()
}

// generateKeyPairVersion makes the key pair of an asymmetric version in
// the token, labelled like every CMK version.
func (s *Service) generateKeyPairVersion(ctx context.Context, spec asymSpec, usage, keyID string, id uuid.UUID) (hsm.KeyPair, error) {
	kp, err := s.tok.GenerateCMKKeyPair(ctx, hsm.CMKKeyPairOptions{Bits: spec.bits, Curve: spec.curve, Sign: usage == KeyUsageSign,
		ID: id[:], Label: versionLabel(keyID, id.String())})
	if errors.Is(err, hsm.ErrMechanismUnsupported) {
		e := NewError(CodeUnsupportedOp, "KeySpec: %s: token %q cannot generate %s keys; accepted here: %s", spec.name, s.tok.Label(), spec.curve, keySpecNames())
		e.Param, e.Err = "KeySpec", err
		return hsm.KeyPair{}, e
	}
	if err != nil {
		return hsm.KeyPair{}, Internal("generating the key pair in the token", err)
	}
	s.asym.put(id, asymRef{keyID: keyID, pair: kp})
	return kp, nil
}

// destroyPair removes a key pair that no metadata names.
func (s *Service) destroyPair(ctx context.Context, kp hsm.KeyPair) {
	bg := context.WithoutCancel(ctx)
	_ = s.tok.DestroyObject(bg, kp.Private)
	_ = s.tok.DestroyObject(bg, kp.Public)
}

// pairHandle finds an asymmetric version's key pair: from the cache, or
// the token (checking that its label names keyID and the version).
func (s *Service) pairHandle(ctx context.Context, keyID string, id uuid.UUID) (hsm.KeyPair, error) {
	if r, ok := s.asym.get(id); ok && r.keyID == keyID {
		return r.pair, nil
	}
	kp, err := s.tok.FindKeyPairByID(ctx, id[:])
	if err != nil {
		return hsm.KeyPair{}, Internal("finding the key version's key pair", err)
	}
	a, err := s.tok.Attributes(ctx, kp.Private, hsm.CKA_LABEL)
	if err != nil {
		return hsm.KeyPair{}, Internal("reading the key version", err)
	}
	if string(a[hsm.CKA_LABEL]) != versionLabel(keyID, id.String()) {
		return hsm.KeyPair{}, Internal("finding the key version", errors.New("the key pair's label names another key"))
	}
	s.asym.put(id, asymRef{keyID: keyID, pair: kp})
	return kp, nil
}

// asymKey is an Enabled asymmetric key's version, ready for one operation.
type asymKey struct {
	meta    *keyMeta
	spec    asymSpec
	version uuid.UUID
	pair    hsm.KeyPair
}

// asymVersion resolves the key of an asymmetric operation and checks, in
// this order, before any token operation: the key exists and is Enabled,
// it is asymmetric with the usage the operation needs, the algorithm is
// one of its spec's for that usage, and the version is one of its own.
func (s *Service) asymVersion(ctx context.Context, ref, versionID, usage, alg string) (*asymKey, error) {
	if alg == AlgSM2DSA {
		e := NewError(CodeUnsupportedOp, "Algorithm: %s: %s", AlgSM2DSA, sm2DSAUnsupportedM)
		e.Param = "Algorithm"
		return nil, e
	}
	m, err := s.resolve(ctx, "KeyId", ref)
	if err != nil {
		return nil, err
	}
	if err := s.checkState(ctx, m, s.usableNow); err != nil {
		return nil, err
	}
	spec, ok := lookupAsymSpec(m.KeySpec)
	if !ok {
		return nil, InvalidParam("KeyId", "the key %s is a symmetric key (%s): this operation needs an asymmetric key with KeyUsage %s", m.KeyId, m.KeySpec, usage)
	}
	if m.KeyUsage != usage {
		return nil, InvalidParam("KeyId", "the key %s has KeyUsage %s: this operation needs KeyUsage %s", m.KeyId, m.KeyUsage, usage)
	}
	if algs := spec.algorithms(usage); !slices.Contains(algs, alg) {
		return nil, InvalidParam("Algorithm", "%q with a %s key: accepted %s", Clip(alg, 32), spec.name, strings.Join(algs, ", "))
	}
	vid, err := s.ownVersion(m, versionID)
	if err != nil {
		return nil, err
	}
	return &asymKey{meta: m, spec: spec, version: vid}, nil
}

// ownVersion checks that versionID names one of the key's versions.
func (s *Service) ownVersion(m *keyMeta, versionID string) (uuid.UUID, error) {
	if versionID == "" {
		return uuid.UUID{}, InvalidParam("KeyVersionId", "is required: one of the key's version ids (ListKeyVersions)")
	}
	vid, err := uuid.Parse(versionID)
	if err != nil {
		return uuid.UUID{}, InvalidParam("KeyVersionId", "%q is not a version id (a UUID)", Clip(versionID, 64))
	}
	for _, v := range m.Versions {
		if v.KeyVersionId == vid.String() {
			return vid, nil
		}
	}
	return uuid.UUID{}, NewError(CodeKeyNotFound, "the key %s has no version %s", m.KeyId, vid)
}

// withPair finds the key pair of k, once the checks passed.
func (s *Service) withPair(ctx context.Context, k *asymKey) error {
	kp, err := s.pairHandle(ctx, k.meta.KeyId, k.version)
	if err != nil {
		return err
	}
	k.pair = kp
	return nil
}

// symmetricOnly refuses a key that is not a symmetric key with its
// material in the token, for the symmetric operations.
func symmetricOnly(m *keyMeta) error {
	if m.KeySpec != KeySpecAES256 {
		return InvalidParam("KeyId", "the key %s is an asymmetric %s key: this operation needs a symmetric key (%s); use the Asymmetric* operations", m.KeyId, m.KeySpec, KeySpecAES256)
	}
	return nil
}

// rotatable refuses automatic rotation of a key that does not rotate by
// itself: asymmetric keys and keys with imported material (as Alibaba:
// UpdateRotationPolicy refuses both).
func rotatable(m *keyMeta) error {
	if m.KeySpec != KeySpecAES256 || m.Origin == OriginExternal {
		e := NewError(CodeUnsupportedOp, "the key %s (KeySpec %s, Origin %s) does not rotate automatically: only %s keys with Origin %s do; an asymmetric key takes new versions by CreateKeyVersion", m.KeyId, m.KeySpec, m.Origin, KeySpecAES256, OriginKMS)
		e.Param = "KeyId"
		return e
	}
	return nil
}

// versionable refuses CreateKeyVersion for a key with imported material:
// it has the one version its material is imported into (Alibaba: BYOK
// keys have no versions). Symmetric and asymmetric keys with Origin
// Aliyun_KMS take new versions.
func versionable(m *keyMeta) error {
	if m.Origin == OriginExternal {
		e := NewError(CodeUnsupportedOp, "the key %s has Origin %s: a key with imported material has one version; only keys with Origin %s take new versions", m.KeyId, OriginExternal, OriginKMS)
		e.Param = "KeyId"
		return e
	}
	return nil
}

// AsymmetricVersionInterval is the least time between two versions of an
// asymmetric key (Alibaba's CreateKeyVersion: at most one version every 7
// days, counted from LastRotationDate, the key's creation at first).
const AsymmetricVersionInterval = 7 * 24 * time.Hour

// mayAddVersion is usable, and for an asymmetric key, the interval since
// its last version has passed.
func (s *Service) mayAddVersion(m *keyMeta) error {
	if err := usable(m); err != nil {
		return err
	}
	if m.KeySpec == KeySpecAES256 {
		return nil
	}
	if next := m.LastRotationDate.Add(AsymmetricVersionInterval); s.now().Before(next) {
		e := NewError(CodeConflict, "the key %s got its last version at %s: an asymmetric key takes a new version at most once every %d days, next at %s", m.KeyId, fmtTime(m.LastRotationDate), int(AsymmetricVersionInterval/(24*time.Hour)), fmtTime(next))
		e.Param = "KeyId"
		return e
	}
	return nil
}
