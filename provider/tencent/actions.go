package tencent

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// Tencent's limits, where they are tighter than the provider's.
const (
	maxContextChars   = 1024 // EncryptionContext, as JSON text
	maxPlaintextBytes = 4096 // Encrypt
	maxDescription    = 1024 // bytes
	minPendingDays    = 7
	maxPendingDays    = 30
	maxBatchKeys      = 100
	maxListLimit      = 200
	maxOffset         = 1 << 30
	listPageSize      = 100
	keyUsageSymmetric = "ENCRYPT_DECRYPT"
)

// Wire values that p11kms fixes.
const (
	keyTypeFIPS  = 2 // KeyMetadata.Type: 2 is FIPS-compliant (AES-256), 4 is SM
	originKMS    = "TENCENT_KMS"
	ownerUser    = "user"
	tagCodeError = 2 // CreateKey TagCode: business error — tags are not stored
)

var (
	// aliasPattern is Tencent's alias: 1–60 letters, digits, - and _,
	// starting with a letter or digit.
	aliasPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$`)
	asymmetricUsages = []string{"ASYMMETRIC_DECRYPT_RSA_2048", "ASYMMETRIC_DECRYPT_SM2", "ASYMMETRIC_SIGN_VERIFY_SM2",
		"ASYMMETRIC_SIGN_VERIFY_RSA_2048", "ASYMMETRIC_SIGN_VERIFY_ECC"}
)

// call is one authenticated request being run.
type call struct {
	ctx context.Context
	h   *handler
	key wire.AccessKey
	rec *wire.Record
	// action is the Tencent action name, from the table: what policies name.
	action string
	// replay is the request's replay rule, claimed by the first authorize
	// that passes.
	replay *wire.ReplayClaim
	// visible is what the policy lets the call show (set by authorize;
	// nil: everything), for the aliases a key's metadata shows.
	visible provider.Visibility
}

// authorize checks the access key's policy for the call's action and what
// the request touches; a key reference in t.Key is replaced by the key id
// checked (wire.AuthorizeTouched), which the action then uses. Once the
// policy allows it, the request's replay rule is claimed: a request the
// policy refuses consumes no replay memory.
func (c *call) authorize(t wire.Touched) error {
	if t.Visible == nil {
		t.Visible = &c.visible
	}
	if err := wire.AuthorizeTouched(c.ctx, c.h.kms, c.key, c.action, t); err != nil {
		return err
	}
	return c.replay.Claim()
}

// keyParam is the Touched of a request whose KeyId names its key.
func keyParam(ref *string) wire.Touched { return wire.Touched{KeyParam: "KeyId", Key: ref} }

// setKey records the key a request used.
func (c *call) setKey(keyID, versionID string) {
	c.rec.KeyId, c.rec.KeyVersionId = provider.Clip(keyID, 128), provider.Clip(versionID, 64)
}

// action is one implemented Tencent action.
type action struct {
	newReq func() any
	run    func(c *call, req any) (any, error)
}

func op[Req any](run func(c *call, req *Req) (any, error)) action {
	return action{newReq: func() any { return new(Req) }, run: func(c *call, req any) (any, error) { return run(c, req.(*Req)) }}
}

// onKey is the row of an action whose only parameter is KeyId: the
// parameter is required and authorized (resolved once) here, and run gets
// the key reference to use.
func onKey(run func(c *call, ref string) (any, error)) action {
	return op(func(c *call, req *keyIDRequest) (any, error) {
		if err := required("KeyId", req.KeyId); err != nil {
			return nil, err
		}
		if err := c.authorize(keyParam(&req.KeyId)); err != nil {
			return nil, err
		}
		return run(c, req.KeyId)
	})
}

// actions are the implemented actions, by Tencent name. Policies name
// these actions.
var actions = map[string]action{
	"CreateKey":            op(createKey),
	"DescribeKey":          onKey(describeKey),
	"DescribeKeys":         op(describeKeys),
	"ListKeys":             op(listKeys),
	"EnableKey":            onKey(func(c *call, ref string) (any, error) { return setState(c, true, ref) }),
	"DisableKey":           onKey(func(c *call, ref string) (any, error) { return setState(c, false, ref) }),
	"EnableKeys":           op(func(c *call, req *keyIDsRequest) (any, error) { return batchState(c, true, req) }),
	"DisableKeys":          op(func(c *call, req *keyIDsRequest) (any, error) { return batchState(c, false, req) }),
	"ScheduleKeyDeletion":  op(scheduleKeyDeletion),
	"CancelKeyDeletion":    onKey(cancelKeyDeletion),
	"UpdateAlias":          op(updateAlias),
	"GetKeyRotationStatus": onKey(getKeyRotationStatus),
	"EnableKeyRotation":    op(enableKeyRotation),
	"DisableKeyRotation": onKey(func(c *call, ref string) (any, error) {
		return rotation(c, &provider.UpdateRotationPolicyRequest{KeyId: ref})
	}),
	"GenerateDataKey":  op(generateDataKey),
	"Encrypt":          op(encrypt),
	"Decrypt":          op(decrypt),
	"ReEncrypt":        op(reEncrypt),
	"GenerateRandom":   op(generateRandom),
	"GetServiceStatus": op(getServiceStatus),
}

// knownActions are the other actions of KMS 2019-01-18 (from the SDK's
// client): answered UnsupportedOperation rather than InvalidAction.
var knownActions = map[string]bool{}

func init() {
	for _, a := range strings.Fields(`ArchiveKey AsymmetricRsaDecrypt AsymmetricSm2Decrypt BindCloudResource
		CancelKeyArchive CreateWhiteBoxKey DeleteImportedKeyMaterial DeleteWhiteBoxKey DescribeWhiteBoxDecryptKey
		DescribeWhiteBoxDeviceFingerprints DescribeWhiteBoxKey DescribeWhiteBoxKeyDetails DescribeWhiteBoxServiceStatus
		DisableWhiteBoxKey DisableWhiteBoxKeys EnableWhiteBoxKey EnableWhiteBoxKeys EncryptByWhiteBox
		GetParametersForImport GetPublicKey GetRegions ImportKeyMaterial ListAlgorithms ListKeyDetail
		OverwriteWhiteBoxDeviceFingerprints PostQuantumCryptoDecrypt PostQuantumCryptoEncrypt PostQuantumCryptoSign
		PostQuantumCryptoVerify SignByAsymmetricKey UnbindCloudResource UpdateKeyDescription VerifyByAsymmetricKey`) {
		knownActions[a] = true
	}
}

// ---- helpers ----

func required(name, v string) error {
	if v == "" {
		return errorf(CodeMissingParameter, "the parameter %s is required", name)
	}
	return nil
}

// checkAlias validates a Tencent alias (without the provider's alias/ prefix).
func checkAlias(a string) error {
	if err := required("Alias", a); err != nil {
		return err
	}
	if !aliasPattern.MatchString(a) {
		return errorf(CodeInvalidAlias, "Alias %q: accepted 1 to 60 letters, digits, - and _, starting with a letter or digit", provider.Clip(a, 64))
	}
	if strings.HasPrefix(strings.ToLower(a), "kms-") || strings.HasPrefix(a, "acs") {
		return errorf(CodeInvalidAlias, "Alias %q: names starting with kms- (cloud products) or acs (Alibaba) are reserved", provider.Clip(a, 64))
	}
	return nil
}

// aliasName is the provider's name of a Tencent alias.
func aliasName(a string) string { return "alias/" + a }

// tencentAlias picks the alias to show for a key: the first whose name is
// a Tencent alias.
func tencentAlias(list []provider.Alias) string {
	for _, a := range list {
		if n := strings.TrimPrefix(a.AliasName, "alias/"); aliasPattern.MatchString(n) {
			return n
		}
	}
	return ""
}

// unixTime converts the provider's ISO 8601 times to Unix seconds (0 if unset).
func unixTime(s string) uint64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil || t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

func keyState(s string) string {
	if s == provider.StatePendingDeletion {
		return "PendingDelete"
	}
	return s
}

// parseContext parses an EncryptionContext JSON string (≤1024 characters).
func parseContext(param, s string) (wrap.EncryptionContext, error) {
	return provider.ParseEncryptionContext(param, s, maxContextChars)
}

func isCode(err error, code string) bool { return provider.ErrorCode(err) == code }

func (c *call) resolve(ref string) (string, error) { return c.h.kms.ResolveKeyId(c.ctx, ref) }

// describe returns a key's Tencent metadata.
func (c *call) describe(ref string) (keyMetadata, error) {
	d, err := c.h.kms.DescribeKey(c.ctx, &provider.KeyIdRequest{KeyId: ref})
	if err != nil {
		return keyMetadata{}, err
	}
	md := d.KeyMetadata
	al, err := c.h.kms.ListAliasesByKeyId(c.ctx, &provider.ListAliasesByKeyIdRequest{KeyId: md.KeyId, PageSize: new(100), Visible: c.visible})
	if err != nil {
		return keyMetadata{}, err
	}
	km := keyMetadata{KeyId: md.KeyId, Alias: tencentAlias(al.Aliases.Alias), CreateTime: unixTime(md.CreationDate),
		Description: md.Description, KeyState: keyState(md.KeyState), KeyUsage: keyUsageSymmetric, Type: keyTypeFIPS,
		KeyRotationEnabled: md.AutomaticRotation == "Enabled", Owner: ownerUser, DeletionDate: unixTime(md.DeleteDate),
		Origin: originKMS, ResourceId: "creatorUin/0/" + md.KeyId}
	if km.KeyRotationEnabled {
		km.NextRotateTime = unixTime(md.NextRotationDate)
	}
	return km, nil
}

// discard disables a key made by a CreateKey that then failed, and
// schedules its deletion (best effort: the request's error is what matters).
func (c *call) discard(keyID string) {
	ctx := context.WithoutCancel(c.ctx)
	_, _ = c.h.kms.DisableKey(ctx, &provider.KeyIdRequest{KeyId: keyID})
	_, _ = c.h.kms.ScheduleKeyDeletion(ctx, &provider.ScheduleKeyDeletionRequest{KeyId: keyID, PendingWindowInDays: minPendingDays})
}

// ---- key management ----

func createKey(c *call, req *createKeyRequest) (any, error) {
	if err := checkAlias(req.Alias); err != nil {
		return nil, err
	}
	switch {
	case req.KeyUsage == "" || req.KeyUsage == keyUsageSymmetric:
	case slices.Contains(asymmetricUsages, req.KeyUsage):
		return nil, errorf(CodeUnsupportedOperation, "KeyUsage %s: p11kms makes only ENCRYPT_DECRYPT keys", req.KeyUsage)
	default:
		return nil, errorf(CodeInvalidKeyUsage, "KeyUsage %q: accepted ENCRYPT_DECRYPT", provider.Clip(req.KeyUsage, 40))
	}
	if req.Type != nil {
		switch *req.Type {
		case 1:
		case 2:
			return nil, errorf(CodeUnsupportedOperation, "Type 2 (EXTERNAL, imported key material) is not supported by p11kms")
		default:
			return nil, errorf(CodeInvalidType, "Type %d: accepted 1", *req.Type)
		}
	}
	if req.HsmClusterId != "" {
		return nil, errorf(CodeInvalidHsmClusterId, "HsmClusterId: p11kms has no HSM clusters; leave it empty")
	}
	if len(req.Description) > maxDescription {
		return nil, provider.InvalidParam("Description", "%d bytes: at most %d", len(req.Description), maxDescription)
	}
	tagKeys := map[string]bool{}
	for i, t := range req.Tags {
		if t.TagKey == "" {
			return nil, errorf(CodeMissingParameter, "the parameter Tags.%d.TagKey is required", i)
		}
		if tagKeys[t.TagKey] {
			return nil, errorf(CodeTagKeysDuplicated, "the tag key %q appears more than once", provider.Clip(t.TagKey, 64))
		}
		tagKeys[t.TagKey] = true
	}
	preq := &provider.CreateKeyRequest{Description: req.Description}
	alias := aliasName(req.Alias)
	if err := c.authorize(wire.Touched{Alias: alias}); err != nil {
		return nil, err
	}
	if _, err := c.resolve(alias); err == nil {
		return nil, provider.NewError(provider.CodeAliasExists, "the alias %s already exists", req.Alias)
	} else if !isCode(err, provider.CodeAliasNotFound) {
		return nil, err
	}
	kr, err := c.h.kms.CreateKey(c.ctx, preq)
	if err != nil {
		return nil, err
	}
	md := kr.KeyMetadata
	c.setKey(md.KeyId, md.PrimaryKeyVersion)
	if _, err := c.h.kms.CreateAlias(c.ctx, &provider.AliasRequest{AliasName: alias, KeyId: md.KeyId}); err != nil {
		c.discard(md.KeyId)
		return nil, err
	}
	resp := &createKeyResponse{KeyId: md.KeyId, Alias: req.Alias, CreateTime: unixTime(md.CreationDate), Description: md.Description,
		KeyState: keyState(md.KeyState), KeyUsage: keyUsageSymmetric}
	if len(req.Tags) > 0 {
		resp.TagCode, resp.TagMsg = tagCodeError, "p11kms does not store tags: the key was created without them"
	}
	return resp, nil
}

func describeKey(c *call, ref string) (any, error) {
	md, err := c.describe(ref)
	if err != nil {
		return nil, err
	}
	c.setKey(md.KeyId, "")
	return &describeKeyResponse{KeyMetadata: md}, nil
}

// checkBatch validates a KeyIds list.
func checkBatch(ids []string) error {
	if len(ids) == 0 {
		return errorf(CodeMissingParameter, "the parameter KeyIds is required")
	}
	if len(ids) > maxBatchKeys {
		return errorf(CodeInvalidParameterVal, "KeyIds: at most %d keys", maxBatchKeys)
	}
	for i, id := range ids {
		if id == "" {
			return errorf(CodeMissingParameter, "the parameter KeyIds.%d is empty", i)
		}
	}
	return nil
}

// describeKeys describes the listed keys; keys that do not exist are left out.
func describeKeys(c *call, req *keyIDsRequest) (any, error) {
	if err := checkBatch(req.KeyIds); err != nil {
		return nil, err
	}
	resp := &describeKeysResponse{KeyMetadatas: []keyMetadata{}}
	for _, id := range req.KeyIds {
		err := c.authorize(keyParam(&id))
		var md keyMetadata
		if err == nil {
			md, err = c.describe(id)
		}
		if isCode(err, provider.CodeKeyNotFound) || isCode(err, provider.CodeAliasNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		resp.KeyMetadatas = append(resp.KeyMetadatas, md)
	}
	return resp, nil
}

func listKeys(c *call, req *listKeysRequest) (any, error) {
	offset, limit := 0, 10
	if req.Limit != nil {
		if *req.Limit < 1 || *req.Limit > maxListLimit {
			return nil, provider.InvalidParam("Limit", "%d: accepted 1 to %d", *req.Limit, maxListLimit)
		}
		limit = int(*req.Limit)
	}
	if req.Offset != nil {
		if *req.Offset > maxOffset {
			return nil, provider.InvalidParam("Offset", "%d: at most %d", *req.Offset, maxOffset)
		}
		offset = int(*req.Offset)
	}
	if req.Role != nil && *req.Role > 1 {
		return nil, provider.InvalidParam("Role", "%d: accepted 0 (keys you created) or 1 (keys of cloud products)", *req.Role)
	}
	if req.HsmClusterId != "" {
		return nil, errorf(CodeInvalidHsmClusterId, "HsmClusterId: p11kms has no HSM clusters; leave it empty")
	}
	var visible provider.Visibility
	if err := c.authorize(wire.Touched{Visible: &visible}); err != nil {
		return nil, err
	}
	resp := &listKeysResponse{Keys: []keyRef{}}
	if req.Role != nil && *req.Role == 1 {
		return resp, nil // p11kms has no keys made by cloud products
	}
	for pn := offset/listPageSize + 1; ; pn++ {
		r, err := c.h.kms.ListKeys(c.ctx, &provider.ListKeysRequest{PageNumber: new(pn), PageSize: new(listPageSize), Visible: visible})
		if err != nil {
			return nil, err
		}
		resp.TotalCount = uint64(r.TotalCount)
		for i, k := range r.Keys.Key {
			if pos := (pn-1)*listPageSize + i; pos >= offset && pos < offset+limit {
				resp.Keys = append(resp.Keys, keyRef{KeyId: k.KeyId})
			}
		}
		if pn*listPageSize >= offset+limit || pn*listPageSize >= r.TotalCount {
			return resp, nil
		}
	}
}

// setState enables or disables one key (authorized by the caller).
func setState(c *call, enable bool, ref string) (any, error) {
	c.setKey(ref, "")
	preq := &provider.KeyIdRequest{KeyId: ref}
	var err error
	if enable {
		_, err = c.h.kms.EnableKey(c.ctx, preq)
	} else {
		_, err = c.h.kms.DisableKey(c.ctx, preq)
	}
	if err != nil {
		return nil, err
	}
	return &emptyResponse{}, nil
}

// batchState authorizes every key first, then changes them in order; the
// first failure stops the batch (earlier keys stay changed).
func batchState(c *call, enable bool, req *keyIDsRequest) (any, error) {
	if err := checkBatch(req.KeyIds); err != nil {
		return nil, err
	}
	for i := range req.KeyIds {
		if err := c.authorize(keyParam(&req.KeyIds[i])); err != nil {
			return nil, err
		}
	}
	for _, id := range req.KeyIds {
		if _, err := setState(c, enable, id); err != nil {
			return nil, err
		}
	}
	c.setKey("", "")
	return &emptyResponse{}, nil
}

// scheduleKeyDeletion follows Tencent: the key must be Disabled first, and
// the window is 7 to 30 days.
func scheduleKeyDeletion(c *call, req *scheduleKeyDeletionRequest) (any, error) {
	if err := required("KeyId", req.KeyId); err != nil {
		return nil, err
	}
	if req.PendingWindowInDays == nil {
		return nil, errorf(CodeMissingParameter, "the parameter PendingWindowInDays is required")
	}
	days := *req.PendingWindowInDays
	if days < minPendingDays || days > maxPendingDays {
		return nil, errorf(CodeInvalidPendingWindow, "PendingWindowInDays %d: accepted %d to %d", days, minPendingDays, maxPendingDays)
	}
	preq := &provider.ScheduleKeyDeletionRequest{KeyId: req.KeyId, PendingWindowInDays: int(days)}
	if err := c.authorize(keyParam(&preq.KeyId)); err != nil {
		return nil, err
	}
	d, err := c.h.kms.DescribeKey(c.ctx, &provider.KeyIdRequest{KeyId: preq.KeyId})
	if err != nil {
		return nil, err
	}
	id := d.KeyMetadata.KeyId
	c.setKey(id, "")
	if d.KeyMetadata.KeyState == provider.StateEnabled {
		return nil, errorf(CodeCmkShouldBeDisabled, "the key %s is Enabled: disable it before scheduling its deletion", id)
	}
	preq.KeyId = id
	if _, err := c.h.kms.ScheduleKeyDeletion(c.ctx, preq); err != nil {
		return nil, err
	}
	d, err = c.h.kms.DescribeKey(c.ctx, &provider.KeyIdRequest{KeyId: id})
	if err != nil {
		return nil, err
	}
	return &scheduleKeyDeletionResponse{DeletionDate: unixTime(d.KeyMetadata.DeleteDate), KeyId: id}, nil
}

// cancelKeyDeletion follows Tencent: the key comes back Disabled.
func cancelKeyDeletion(c *call, ref string) (any, error) {
	id, err := c.resolve(ref)
	if err != nil {
		return nil, err
	}
	c.setKey(id, "")
	if _, err := c.h.kms.CancelKeyDeletion(c.ctx, &provider.KeyIdRequest{KeyId: id}); err != nil {
		return nil, err
	}
	if _, err := c.h.kms.DisableKey(context.WithoutCancel(c.ctx), &provider.KeyIdRequest{KeyId: id}); err != nil {
		return nil, fmt.Errorf("the deletion was cancelled but the key could not be disabled: %w", err)
	}
	return &keyIDResponse{KeyId: id}, nil
}

// updateAlias gives a key a new alias, replacing its Tencent-style alias
// (a key has one alias on Tencent's API).
func updateAlias(c *call, req *updateAliasRequest) (any, error) {
	if err := checkAlias(req.Alias); err != nil {
		return nil, err
	}
	if err := required("KeyId", req.KeyId); err != nil {
		return nil, err
	}
	alias := aliasName(req.Alias)
	if err := c.authorize(wire.Touched{KeyParam: "KeyId", Key: &req.KeyId, Alias: alias}); err != nil {
		return nil, err
	}
	id, err := c.resolve(req.KeyId)
	if err != nil {
		return nil, err
	}
	c.setKey(id, "")
	switch cur, err := c.resolve(alias); {
	case err == nil && cur == id:
		return &emptyResponse{}, nil
	case err == nil:
		return nil, provider.NewError(provider.CodeAliasExists, "the alias %s already names another key", req.Alias)
	case !isCode(err, provider.CodeAliasNotFound):
		return nil, err
	}
	old, err := c.h.kms.ListAliasesByKeyId(c.ctx, &provider.ListAliasesByKeyIdRequest{KeyId: id, PageSize: new(100)})
	if err != nil {
		return nil, err
	}
	var replaced []string
	for _, a := range old.Aliases.Alias {
		if n := strings.TrimPrefix(a.AliasName, "alias/"); a.AliasName != alias && aliasPattern.MatchString(n) {
			// The aliases replaced are changed too: authorized before anything changes.
			if err := c.authorize(wire.Touched{Alias: a.AliasName}); err != nil {
				return nil, err
			}
			replaced = append(replaced, a.AliasName)
		}
	}
	if _, err := c.h.kms.CreateAlias(c.ctx, &provider.AliasRequest{AliasName: alias, KeyId: id}); err != nil {
		return nil, err
	}
	for _, name := range replaced {
		if _, err := c.h.kms.DeleteAlias(c.ctx, &provider.DeleteAliasRequest{AliasName: name}); err != nil && !isCode(err, provider.CodeAliasNotFound) {
			return nil, err
		}
	}
	return &emptyResponse{}, nil
}

func getKeyRotationStatus(c *call, ref string) (any, error) {
	d, err := c.h.kms.DescribeKey(c.ctx, &provider.KeyIdRequest{KeyId: ref})
	if err != nil {
		return nil, err
	}
	c.setKey(d.KeyMetadata.KeyId, "")
	return &rotationStatusResponse{KeyRotationEnabled: d.KeyMetadata.AutomaticRotation == "Enabled"}, nil
}

func enableKeyRotation(c *call, req *enableKeyRotationRequest) (any, error) {
	if err := required("KeyId", req.KeyId); err != nil {
		return nil, err
	}
	days := uint64(365)
	if req.RotateDays != nil {
		if days = *req.RotateDays; days < provider.MinRotationDays || days > provider.MaxRotationDays {
			return nil, provider.InvalidParam("RotateDays", "%d: accepted %d to %d", days, provider.MinRotationDays, provider.MaxRotationDays)
		}
	}
	preq := &provider.UpdateRotationPolicyRequest{KeyId: req.KeyId, EnableAutomaticRotation: true, RotationInterval: fmt.Sprintf("%dd", days)}
	if err := c.authorize(keyParam(&preq.KeyId)); err != nil {
		return nil, err
	}
	return rotation(c, preq)
}

// rotation sets a key's rotation policy (authorized by the caller).
func rotation(c *call, preq *provider.UpdateRotationPolicyRequest) (any, error) {
	c.setKey(preq.KeyId, "")
	if _, err := c.h.kms.UpdateRotationPolicy(c.ctx, preq); err != nil {
		return nil, err
	}
	return &emptyResponse{}, nil
}
