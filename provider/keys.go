package provider

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
)

// Key specs and usages.
const (
	KeySpecAES256   = "Aliyun_AES_256"
	KeyUsageEncrypt = "ENCRYPT/DECRYPT"
)

// versionLabel is the CKA_LABEL of a CMK version key.
func versionLabel(keyID, versionID string) string {
	return "p11kms/" + keyID + "/" + versionID
}

// ValidateCreateKey checks a CreateKey request as CreateKey would, without
// writing anything: the errors are CreateKey's (InvalidParameter naming the
// field). Seeds and other batch callers check every entry with it first.
func ValidateCreateKey(req *CreateKeyRequest) error {
	_, err := checkCreateKey(req)
	return err
}

// newKey is a validated CreateKey request.
type newKey struct {
	spec     string
	usage    string
	origin   string
	asym     *asymSpec // nil for a symmetric key
	interval int64     // rotation interval in seconds
}

// checkCreateKey validates req.
func checkCreateKey(req *CreateKeyRequest) (*newKey, error) {
	nk := &newKey{spec: KeySpecAES256, usage: KeyUsageEncrypt, origin: OriginKMS}
	switch spec, isAsym := lookupAsymSpec(req.KeySpec); {
	case isAsym:
		usage, err := checkAsymUsage(spec, req.KeyUsage)
		if err != nil {
			return nil, err
		}
		nk.spec, nk.usage, nk.asym = spec.name, usage, &spec
	case req.KeySpec != "" && req.KeySpec != KeySpecAES256:
		return nil, InvalidParam("KeySpec", "%q: accepted %s", Clip(req.KeySpec, 32), keySpecNames())
	case req.KeyUsage != "" && req.KeyUsage != KeyUsageEncrypt:
		return nil, InvalidParam("KeyUsage", "%q with KeySpec %s: accepted %s", Clip(req.KeyUsage, 32), KeySpecAES256, KeyUsageEncrypt)
	}
	if err := checkOrigin(req.Origin, nk); err != nil {
		return nil, err
	}
	if n := len([]rune(req.Description)); n > MaxDescriptionChars {
		return nil, InvalidParam("Description", "%d characters: at most %d", n, MaxDescriptionChars)
	}
	interval, err := rotationPolicy(req.EnableAutomaticRotation, req.RotationInterval)
	if err != nil {
		return nil, err
	}
	if req.EnableAutomaticRotation && (nk.asym != nil || nk.origin == OriginExternal) {
		return nil, InvalidParam("EnableAutomaticRotation", "accepted only for %s keys with Origin %s; a %s key with Origin %s does not rotate", KeySpecAES256, OriginKMS, nk.spec, nk.origin)
	}
	nk.interval = interval
	if req.KeyId != "" {
		if err := checkKeyID("KeyId", req.KeyId); err != nil {
			return nil, err
		}
	}
	return nk, nil
}

// CreateKey creates a CMK with its first version: an AES key or a key pair
// generated in the token, or, with Origin EXTERNAL, no key material yet
// (the key is PendingImport until ImportKeyMaterial).
func (s *Service) CreateKey(ctx context.Context, req *CreateKeyRequest) (*KeyResponse, error) {
	nk, err := checkCreateKey(req)
	if err != nil {
		return nil, err
	}
	if err := CheckTags("Tags", req.Tags); err != nil {
		return nil, err
	}
	keyID := req.KeyId
	if keyID == "" {
		keyID = uuid.NewString()
	}
	now := s.now()
	versionID := uuid.New()
	m := &keyMeta{
		KeyId: keyID, Description: req.Description, KeySpec: nk.spec, KeyUsage: nk.usage,
		KeyState: StateEnabled, Origin: nk.origin, ProtectionLevel: "HSM", Creator: s.opt.Creator,
		CreationDate: now, PrimaryKeyVersion: versionID.String(),
		Versions:          []versionMeta{{KeyVersionId: versionID.String(), CreationDate: now}},
		AutomaticRotation: req.EnableAutomaticRotation, RotationInterval: nk.interval,
		LastRotationDate: now, Tags: maps.Clone(req.Tags),
	}
	if nk.origin == OriginExternal {
		// The version is named now and gets its object on ImportKeyMaterial,
		// so material imported again after DeleteKeyMaterial or expiry
		// decrypts the blobs made before.
		m.KeyState = StatePendingImport
	}
	// The version key first: a crash before the metadata leaves an orphan
	// version object that Sweep removes, never metadata naming a missing key.
	remember, destroy, err := s.makeVersion(ctx, nk, keyID, versionID)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(m)
	create := s.tok.CreateData
	if req.KeyId == "" {
		create = s.tok.CreateFreshData // a new UUID: no search for a rival first
	}
	obj, err := create(ctx, appKeys, keyID, b)
	if err != nil {
		if errors.Is(err, hsm.ErrExists) {
			// Another key has this id: ours was never named by metadata.
			destroy()
			return nil, InvalidParam("KeyId", "a key with id %s already exists", keyID)
		}
		if errors.Is(err, hsm.ErrNotWritten) {
			destroy()
		}
		// Otherwise Sweep removes the version object once it is sure no
		// metadata names it (see rotate).
		return nil, Internal("writing key metadata", err)
	}
	remember()
	s.cache.putKey(m, obj)
	return &KeyResponse{KeyMetadata: s.metadata(m), RequestId: RequestID(ctx)}, nil
}

// makeVersion makes the token object(s) of a new version of a key (none
// for an EXTERNAL key: ImportKeyMaterial makes it) and returns how to
// remember them once the metadata names them and how to destroy them if it
// never will.
func (s *Service) makeVersion(ctx context.Context, nk *newKey, keyID string, versionID uuid.UUID) (remember, destroy func(), err error) {
	bg := context.WithoutCancel(ctx)
	switch {
	case nk.origin == OriginExternal:
		return func() {}, func() {}, nil
	case nk.asym != nil:
		kp, err := s.generateKeyPairVersion(ctx, *nk.asym, nk.usage, keyID, versionID)
		if err != nil {
			return nil, nil, err
		}
		return func() {}, func() { s.asym.forget(keyID); s.destroyPair(bg, kp) }, nil
	}
	h, err := s.tok.GenerateAESKey(ctx, 256, hsm.SecretKeyOptions{ID: versionID[:], Label: versionLabel(keyID, versionID.String()),
		Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		return nil, nil, Internal("generating the key in the token", err)
	}
	return func() { s.rememberVersion(versionID, keyID, h) }, func() { _ = s.tok.DestroyObject(bg, h) }, nil
}

// kindOf is what makeVersion needs to know of an existing key.
func kindOf(m *keyMeta) *newKey {
	nk := &newKey{spec: m.KeySpec, usage: m.KeyUsage, origin: m.Origin}
	if a, ok := lookupAsymSpec(m.KeySpec); ok {
		nk.asym = &a
	}
	return nk
}

// DescribeKey returns a key's metadata, in any state.
func (s *Service) DescribeKey(ctx context.Context, req *KeyIdRequest) (*KeyResponse, error) {
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	return &KeyResponse{KeyMetadata: s.metadata(m), RequestId: RequestID(ctx)}, nil
}

// ListKeys lists keys, a page at a time, sorted by key id.
func (s *Service) ListKeys(ctx context.Context, req *ListKeysRequest) (*ListKeysResponse, error) {
	pg, err := parsePage(req.PageNumber, req.PageSize)
	if err != nil {
		return nil, err
	}
	keys, err := s.listKeys(ctx)
	if err != nil {
		return nil, err
	}
	if req.Visible != nil {
		if keys, err = s.visibleKeys(ctx, keys, req.Visible); err != nil {
			return nil, err
		}
	}
	from, to := pg.bounds(len(keys))
	resp := &ListKeysResponse{TotalCount: len(keys), PageNumber: pg.number, PageSize: pg.size, RequestId: RequestID(ctx)}
	resp.Keys.Key = []KeyRef{}
	for _, m := range keys[from:to] {
		resp.Keys.Key = append(resp.Keys.Key, KeyRef{KeyId: m.KeyId, KeyArn: s.arn(m.KeyId)})
	}
	return resp, nil
}

// visibleKeys keeps the keys v allows by id or by one of their aliases.
func (s *Service) visibleKeys(ctx context.Context, keys []*keyMeta, v Visibility) ([]*keyMeta, error) {
	aliases, err := s.allAliases(ctx)
	if err != nil {
		return nil, err
	}
	byKey := map[string][]string{}
	for _, a := range aliases {
		byKey[a.KeyId] = append(byKey[a.KeyId], a.AliasName)
	}
	out := make([]*keyMeta, 0, len(keys))
	for _, m := range keys {
		if v(m.KeyId, "") || slices.ContainsFunc(byKey[m.KeyId], func(a string) bool { return v(m.KeyId, a) }) {
			out = append(out, m)
		}
	}
	return out, nil
}

// setState runs a state transition to the state to.
func (s *Service) setState(ctx context.Context, req *KeyIdRequest, to string, change func(*keyMeta) error) (*RequestIdResponse, error) {
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	// The change checks the state it applies to: the token's, read under
	// the object lock, not the cache's, which another process may have
	// made stale (a CancelKeyDeletion right after another process's
	// ScheduleKeyDeletion must succeed).
	if _, err := s.updateKey(ctx, m.KeyId, change); err != nil {
		return nil, err
	}
	if to != StateEnabled {
		s.forgetKey(m.KeyId)
	}
	return &RequestIdResponse{RequestId: RequestID(ctx)}, nil
}

// checkState runs check on a key's cached metadata and, if it refuses,
// again on the metadata the token holds now before refusing: the cache may
// be up to its TTL behind another process's change (a key enabled there a
// moment ago must not be refused here).
func (s *Service) checkState(ctx context.Context, cached *keyMeta, check func(*keyMeta) error) error {
	if check(cached) == nil {
		return nil
	}
	fresh, _, err := s.loadKey(ctx, cached.KeyId)
	if err != nil {
		return err
	}
	return check(fresh)
}

// EnableKey enables a Disabled key.
func (s *Service) EnableKey(ctx context.Context, req *KeyIdRequest) (*RequestIdResponse, error) {
	return s.setState(ctx, req, StateEnabled, func(m *keyMeta) error {
		if m.KeyState == StatePendingDeletion {
			return NewError(CodePendingDeletion, "the key %s is pending deletion: cancel the deletion first", m.KeyId)
		}
		m.KeyState = StateEnabled
		return nil
	})
}

// DisableKey disables an Enabled key: it stops encrypting and decrypting at once.
func (s *Service) DisableKey(ctx context.Context, req *KeyIdRequest) (*RequestIdResponse, error) {
	return s.setState(ctx, req, StateDisabled, func(m *keyMeta) error {
		if m.KeyState == StatePendingDeletion {
			return NewError(CodePendingDeletion, "the key %s is pending deletion", m.KeyId)
		}
		m.KeyState = StateDisabled
		return nil
	})
}

// ErrKeyEnabled is the cause of a ScheduleKeyDeletion refused because the
// request's NotEnabled found the key Enabled.
var ErrKeyEnabled = errors.New("the key is Enabled")

// ScheduleKeyDeletion puts a key in PendingDeletion; Sweep destroys it after
// PendingWindowInDays.
func (s *Service) ScheduleKeyDeletion(ctx context.Context, req *ScheduleKeyDeletionRequest) (*RequestIdResponse, error) {
	if req.PendingWindowInDays < MinPendingWindowDays || req.PendingWindowInDays > MaxPendingWindowDays {
		return nil, InvalidParam("PendingWindowInDays", "%d: accepted an integer from %d to %d", req.PendingWindowInDays, MinPendingWindowDays, MaxPendingWindowDays)
	}
	deleteAt := s.now().Add(time.Duration(req.PendingWindowInDays) * 24 * time.Hour)
	return s.setState(ctx, &KeyIdRequest{KeyId: req.KeyId}, StatePendingDeletion, func(m *keyMeta) error {
		if m.KeyState == StatePendingDeletion {
			return NewError(CodePendingDeletion, "the key %s is already pending deletion", m.KeyId)
		}
		if req.NotEnabled && m.KeyState == StateEnabled {
			e := NewError(CodeConflict, "the key %s is Enabled: disable it before scheduling its deletion", m.KeyId)
			e.Err = ErrKeyEnabled
			return e
		}
		m.KeyState, m.DeleteDate = StatePendingDeletion, deleteAt
		return nil
	})
}

// CancelKeyDeletion returns a PendingDeletion key to Enabled.
func (s *Service) CancelKeyDeletion(ctx context.Context, req *KeyIdRequest) (*RequestIdResponse, error) {
	return s.cancelDeletion(ctx, req, StateEnabled)
}

// CancelKeyDeletionToDisabled returns a PendingDeletion key to Disabled,
// in one metadata write: AWS KMS's CancelKeyDeletion (the key must be
// enabled again before it is used).
func (s *Service) CancelKeyDeletionToDisabled(ctx context.Context, req *KeyIdRequest) (*RequestIdResponse, error) {
	return s.cancelDeletion(ctx, req, StateDisabled)
}

func (s *Service) cancelDeletion(ctx context.Context, req *KeyIdRequest, to string) (*RequestIdResponse, error) {
	return s.setState(ctx, req, to, func(m *keyMeta) error {
		if m.KeyState != StatePendingDeletion {
			return NewError(CodeNotPendingDeletion, "the key %s is not pending deletion", m.KeyId)
		}
		m.KeyState, m.DeleteDate = to, time.Time{}
		return nil
	})
}

// UpdateRotationPolicy turns automatic rotation on (with RotationInterval)
// or off.
func (s *Service) UpdateRotationPolicy(ctx context.Context, req *UpdateRotationPolicyRequest) (*RequestIdResponse, error) {
	interval, err := rotationPolicy(req.EnableAutomaticRotation, req.RotationInterval)
	if err != nil {
		return nil, err
	}
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	if err := rotatable(m); err != nil && req.EnableAutomaticRotation {
		return nil, err
	}
	_, err = s.updateKey(ctx, m.KeyId, func(m *keyMeta) error {
		if m.KeyState == StatePendingDeletion {
			return NewError(CodePendingDeletion, "the key %s is pending deletion", m.KeyId)
		}
		m.AutomaticRotation, m.RotationInterval = req.EnableAutomaticRotation, interval
		if m.LastRotationDate.IsZero() {
			m.LastRotationDate = s.now()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &RequestIdResponse{RequestId: RequestID(ctx)}, nil
}

// CreateKeyVersion makes a new primary version; old versions still decrypt.
func (s *Service) CreateKeyVersion(ctx context.Context, req *KeyIdRequest) (*CreateKeyVersionResponse, error) {
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	if err := versionable(m); err != nil {
		return nil, err
	}
	// Checked before a version key is made (a token-object write); rotate
	// checks again on the state it changes.
	if err := s.checkState(ctx, m, s.mayAddVersion); err != nil {
		return nil, err
	}
	v, err := s.rotate(ctx, m, nil)
	if err != nil {
		return nil, err
	}
	return &CreateKeyVersionResponse{KeyVersion: v, RequestId: RequestID(ctx)}, nil
}

// rotate creates a version key (an AES key, or an asymmetric key's key
// pair) and makes it primary. With due set, it only rotates if due still
// holds on the freshly read metadata (automatic rotation by several nodes
// at once makes one version, not several).
func (s *Service) rotate(ctx context.Context, key *keyMeta, due func(*keyMeta) bool) (KeyVersion, error) {
	keyID, versionID, now := key.KeyId, uuid.New(), s.now()
	remember, destroy, err := s.makeVersion(ctx, kindOf(key), keyID, versionID)
	if err != nil {
		return KeyVersion{}, err
	}
	skipped := false
	_, err = s.updateKey(ctx, keyID, func(m *keyMeta) error {
		skipped = false
		if due != nil && !due(m) {
			skipped = true
			return nil
		}
		if err := s.mayAddVersion(m); err != nil {
			return err
		}
		m.Versions = append(m.Versions, versionMeta{KeyVersionId: versionID.String(), CreationDate: now})
		m.PrimaryKeyVersion, m.LastRotationDate = versionID.String(), now
		return nil
	})
	if skipped {
		destroy() // never named: safe to remove now
		return KeyVersion{}, nil
	}
	if err != nil {
		// Destroy the version key only if the metadata write surely left
		// nothing; otherwise it may be named (the write may have failed
		// after it became visible) and Sweep removes it once it is sure no
		// metadata names it.
		if errors.Is(err, hsm.ErrNotWritten) || ErrorCode(err) != CodeInternalFailure {
			destroy()
		}
		return KeyVersion{}, err
	}
	remember()
	return KeyVersion{KeyId: keyID, KeyVersionId: versionID.String(), CreationDate: fmtTime(now)}, nil
}

// rotationDue reports whether automatic rotation is due.
func (s *Service) rotationDue(m *keyMeta) bool {
	return m.AutomaticRotation && m.RotationInterval > 0 && m.KeyState == StateEnabled &&
		!s.now().Before(m.LastRotationDate.Add(time.Duration(m.RotationInterval)*time.Second))
}

// ListKeyVersions lists a key's versions, oldest first.
func (s *Service) ListKeyVersions(ctx context.Context, req *ListKeyVersionsRequest) (*ListKeyVersionsResponse, error) {
	pg, err := parsePage(req.PageNumber, req.PageSize)
	if err != nil {
		return nil, err
	}
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	from, to := pg.bounds(len(m.Versions))
	resp := &ListKeyVersionsResponse{TotalCount: len(m.Versions), PageNumber: pg.number, PageSize: pg.size, RequestId: RequestID(ctx)}
	resp.KeyVersions.KeyVersion = []KeyVersion{}
	for _, v := range m.Versions[from:to] {
		resp.KeyVersions.KeyVersion = append(resp.KeyVersions.KeyVersion, KeyVersion{KeyId: m.KeyId, KeyVersionId: v.KeyVersionId, CreationDate: fmtTime(v.CreationDate)})
	}
	return resp, nil
}

// DescribeKeyVersion describes one version.
func (s *Service) DescribeKeyVersion(ctx context.Context, req *DescribeKeyVersionRequest) (*DescribeKeyVersionResponse, error) {
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	for _, v := range m.Versions {
		if v.KeyVersionId == req.KeyVersionId {
			return &DescribeKeyVersionResponse{KeyVersion: KeyVersion{KeyId: m.KeyId, KeyVersionId: v.KeyVersionId, CreationDate: fmtTime(v.CreationDate)}, RequestId: RequestID(ctx)}, nil
		}
	}
	if _, err := uuid.Parse(req.KeyVersionId); err != nil {
		return nil, InvalidParam("KeyVersionId", "%q is not a version id (a UUID)", Clip(req.KeyVersionId, 64))
	}
	return nil, NewError(CodeKeyNotFound, "the key %s has no version %s", m.KeyId, req.KeyVersionId)
}
