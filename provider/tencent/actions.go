package tencent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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

// row is a table row over the Tencent request Req: touches says what it
// touches (nil: the action alone), call runs it on the core once the
// pipeline authorized it. The name is the table's key.
func row[Req any](call func(c *wire.Call, req *Req) (any, error), touches func(*Req) []wire.Touched) wire.Action {
	a := wire.Action{New: func() any { return new(Req) }, Call: func(c *wire.Call, req any) (any, error) { return call(c, req.(*Req)) }}
	if touches != nil {
		a.Touches = func(req any) []wire.Touched { return touches(req.(*Req)) }
	}
	return a
}

// key is what a request whose KeyId names its key touches.
func key(ref *string) []wire.Touched { return []wire.Touched{{KeyParam: "KeyId", Key: ref}} }

// onKey is the row of an action whose only parameter is KeyId (required,
// authorized and resolved once by the pipeline); run gets the key to use.
func onKey(run func(c *wire.Call, ref string) (any, error)) wire.Action {
	return row(func(c *wire.Call, r *keyIDRequest) (any, error) { return run(c, r.KeyId) },
		func(r *keyIDRequest) []wire.Touched { return key(&r.KeyId) })
}

// eachKey is what a KeyIds batch touches: every key.
func eachKey(r *keyIDsRequest) []wire.Touched {
	t := make([]wire.Touched, len(r.KeyIds))
	for i := range r.KeyIds {
		t[i] = wire.Touched{KeyParam: "KeyId", Key: &r.KeyIds[i]}
	}
	return t
}

// actions are the implemented actions, by Tencent name: what policies name.
var actions = map[string]*wire.Action{}

func init() {
	describeKeys := row(describeKeys, eachKey)
	describeKeys.SkipMissing = true
	updateAlias := row(updateAlias, func(r *updateAliasRequest) []wire.Touched {
		return []wire.Touched{{KeyParam: "KeyId", Key: &r.KeyId, Alias: aliasName(r.Alias)}}
	})
	updateAlias.More = func(c *wire.Call, req any) ([]wire.Touched, error) {
		return replacedAliases(c, req.(*updateAliasRequest))
	}
	updateAlias.Write = true
	w := wire.Writes
	for name, a := range map[string]wire.Action{
		"CreateKey":            w(row(createKey, func(r *createKeyRequest) []wire.Touched { return []wire.Touched{{Alias: aliasName(r.Alias)}} })),
		"DescribeKey":          onKey(describeKey),
		"DescribeKeys":         describeKeys,
		"ListKeys":             row(listKeys, nil),
		"EnableKey":            w(onKey(func(c *wire.Call, ref string) (any, error) { return setState(c, true, ref) })),
		"DisableKey":           w(onKey(func(c *wire.Call, ref string) (any, error) { return setState(c, false, ref) })),
		"EnableKeys":           w(row(func(c *wire.Call, r *keyIDsRequest) (any, error) { return batchState(c, true, r) }, eachKey)),
		"DisableKeys":          w(row(func(c *wire.Call, r *keyIDsRequest) (any, error) { return batchState(c, false, r) }, eachKey)),
		"ScheduleKeyDeletion":  w(row(scheduleKeyDeletion, func(r *scheduleKeyDeletionRequest) []wire.Touched { return key(&r.KeyId) })),
		"CancelKeyDeletion":    w(onKey(cancelKeyDeletion)),
		"UpdateAlias":          updateAlias,
		"GetKeyRotationStatus": onKey(getKeyRotationStatus),
		"EnableKeyRotation":    w(row(enableKeyRotation, func(r *enableKeyRotationRequest) []wire.Touched { return key(&r.KeyId) })),
		"DisableKeyRotation": w(onKey(func(c *wire.Call, ref string) (any, error) {
			return rotation(c, &provider.UpdateRotationPolicyRequest{KeyId: ref})
		})),
		"GenerateDataKey": row(generateDataKey, func(r *generateDataKeyRequest) []wire.Touched { return key(&r.KeyId) }),
		"Encrypt":         row(encrypt, func(r *encryptRequest) []wire.Touched { return key(&r.KeyId) }),
		"Decrypt":         row(decrypt, func(r *decryptRequest) []wire.Touched { return []wire.Touched{{Blob: r.CiphertextBlob}} }),
		"ReEncrypt": row(reEncrypt, func(r *reEncryptRequest) []wire.Touched {
			return []wire.Touched{{KeyParam: "DestinationKeyId", Key: &r.DestinationKeyId, Blob: r.CiphertextBlob}}
		}),
		"GenerateRandom":   row(generateRandom, nil),
		"GetServiceStatus": row(getServiceStatus, nil),
	} {
		a.Name = name
		actions[name] = &a
	}
	for _, a := range strings.Fields(`ArchiveKey BindCloudResource
		CancelKeyArchive CreateWhiteBoxKey DeleteWhiteBoxKey DescribeWhiteBoxDecryptKey
		DescribeWhiteBoxDeviceFingerprints DescribeWhiteBoxKey DescribeWhiteBoxKeyDetails DescribeWhiteBoxServiceStatus
		DisableWhiteBoxKey DisableWhiteBoxKeys EnableWhiteBoxKey EnableWhiteBoxKeys EncryptByWhiteBox
		GetRegions ListKeyDetail
		OverwriteWhiteBoxDeviceFingerprints PostQuantumCryptoDecrypt PostQuantumCryptoEncrypt PostQuantumCryptoSign
		PostQuantumCryptoVerify UnbindCloudResource UpdateKeyDescription`) {
		knownActions[a] = true
	}
}

// knownActions are the other actions of KMS 2019-01-18 (from the SDK's
// client): answered UnsupportedOperation rather than InvalidAction.
var knownActions = map[string]bool{}

// ---- helpers ----

// checkAlias validates a Tencent alias (without the provider's alias/ prefix).
func checkAlias(a string) error {
	if !aliasPattern.MatchString(a) {
		return errorf(CodeInvalidAlias, "Alias %q: accepted 1 to 60 letters, digits, - and _, starting with a letter or digit", provider.Clip(a, 64))
	}
	if strings.HasPrefix(strings.ToLower(a), "kms-") || strings.HasPrefix(a, "acs") {
		return errorf(CodeInvalidAlias, "Alias %q: names starting with kms- (cloud products) or acs (Alibaba) are reserved", provider.Clip(a, 64))
	}
	return nil
}

// noHsmCluster refuses an HsmClusterId: p11kms has none.
func noHsmCluster(id string) error {
	if id != "" {
		return errorf(CodeInvalidHsmClusterId, "HsmClusterId: p11kms has no HSM clusters; leave it empty")
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

// describe returns a key's Tencent KeyMetadata and its id.
func describe(c *wire.Call, ref string) (object, string, error) {
	d, err := c.KMS.DescribeKey(c.Ctx, &provider.KeyIdRequest{KeyId: ref})
	if err != nil {
		return nil, "", err
	}
	md := d.KeyMetadata
	al, err := c.KMS.ListAliasesByKeyId(c.Ctx, &provider.ListAliasesByKeyIdRequest{KeyId: md.KeyId, PageSize: new(100),
		Visible: c.AccessKey.Policy.Visibility()})
	if err != nil {
		return nil, "", err
	}
	origin, rotates, next := originKMS, md.AutomaticRotation == "Enabled", uint64(0)
	if md.Origin == provider.OriginExternal {
		origin = provider.OriginExternal
	}
	if rotates {
		next = unixTime(md.NextRotationDate)
	}
	return object{"KeyId": md.KeyId, "Alias": tencentAlias(al.Aliases.Alias), "CreateTime": unixTime(md.CreationDate),
		"Description": md.Description, "KeyState": keyState(md.KeyState), "KeyUsage": tencentUsage(md.KeySpec, md.KeyUsage),
		"Type": keyTypeFIPS, "CreatorUin": 0, "KeyRotationEnabled": rotates, "Owner": ownerUser, "NextRotateTime": next,
		"DeletionDate": unixTime(md.DeleteDate), "Origin": origin, "ValidTo": unixTime(md.MaterialExpireTime),
		"ResourceId": "creatorUin/0/" + md.KeyId, "HsmClusterId": ""}, md.KeyId, nil
}

// discard disables a key made by a CreateKey that then failed, and
// schedules its deletion (best effort: the request's error is what matters).
func discard(c *wire.Call, keyID string) {
	ctx := context.WithoutCancel(c.Ctx)
	_, _ = c.KMS.DisableKey(ctx, &provider.KeyIdRequest{KeyId: keyID})
	_, _ = c.KMS.ScheduleKeyDeletion(ctx, &provider.ScheduleKeyDeletionRequest{KeyId: keyID, PendingWindowInDays: minPendingDays})
}

// ---- key management ----

// createKey makes the key and its alias (authorized by the pipeline).
func createKey(c *wire.Call, req *createKeyRequest) (any, error) {
	alias := aliasName(req.Alias)
	if _, err := c.KMS.ResolveKeyId(c.Ctx, alias); err == nil {
		return nil, provider.NewError(provider.CodeAliasExists, "the alias %s already exists", req.Alias)
	} else if !isCode(err, provider.CodeAliasNotFound) {
		return nil, err
	}
	k := asymmetricKeys[req.KeyUsage] // zero for ENCRYPT_DECRYPT: the core's default
	preq := &provider.CreateKeyRequest{Description: req.Description, KeySpec: k[0], KeyUsage: k[1]}
	if req.Type != nil && *req.Type == 2 {
		preq.Origin = provider.OriginExternal
	}
	kr, err := c.KMS.CreateKey(c.Ctx, preq)
	if err != nil {
		return nil, err
	}
	md := kr.KeyMetadata
	c.SetKey(md.KeyId, md.PrimaryKeyVersion)
	if _, err := c.KMS.CreateAlias(c.Ctx, &provider.AliasRequest{AliasName: alias, KeyId: md.KeyId}); err != nil {
		discard(c, md.KeyId)
		return nil, err
	}
	resp := object{"KeyId": md.KeyId, "Alias": req.Alias, "CreateTime": unixTime(md.CreationDate), "Description": md.Description,
		"KeyState": keyState(md.KeyState), "KeyUsage": tencentUsage(md.KeySpec, md.KeyUsage), "TagCode": 0, "TagMsg": "", "HsmClusterId": ""}
	if len(req.Tags) > 0 {
		resp["TagCode"], resp["TagMsg"] = tagCodeError, "p11kms does not store tags: the key was created without them"
	}
	return resp, nil
}

func describeKey(c *wire.Call, ref string) (any, error) {
	md, id, err := describe(c, ref)
	if err != nil {
		return nil, err
	}
	c.SetKey(id, "")
	return object{"KeyMetadata": md}, nil
}

// describeKeys describes the listed keys; keys that do not exist are left
// out (the pipeline empties those it found missing: SkipMissing).
func describeKeys(c *wire.Call, req *keyIDsRequest) (any, error) {
	mds := []object{}
	for _, id := range req.KeyIds {
		if id == "" {
			continue
		}
		md, _, err := describe(c, id)
		if isCode(err, provider.CodeKeyNotFound) || isCode(err, provider.CodeAliasNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		mds = append(mds, md)
	}
	return object{"KeyMetadatas": mds}, nil
}

func listKeys(c *wire.Call, req *listKeysRequest) (any, error) {
	visible := c.AccessKey.Policy.Visibility() // the policy's, as the pipeline authorized it
	offset, limit := 0, 10
	if req.Limit != nil {
		limit = int(*req.Limit)
	}
	if req.Offset != nil {
		offset = int(*req.Offset)
	}
	keys, total := []object{}, 0
	if req.Role != nil && *req.Role == 1 {
		return object{"Keys": keys, "TotalCount": 0}, nil // p11kms has no keys made by cloud products
	}
	for pn := offset/listPageSize + 1; ; pn++ {
		r, err := c.KMS.ListKeys(c.Ctx, &provider.ListKeysRequest{PageNumber: new(pn), PageSize: new(listPageSize), Visible: visible})
		if err != nil {
			return nil, err
		}
		total = r.TotalCount
		for i, k := range r.Keys.Key {
			if pos := (pn-1)*listPageSize + i; pos >= offset && pos < offset+limit {
				keys = append(keys, object{"KeyId": k.KeyId})
			}
		}
		if pn*listPageSize >= offset+limit || pn*listPageSize >= r.TotalCount {
			return object{"Keys": keys, "TotalCount": total}, nil
		}
	}
}

// setState enables or disables one key.
func setState(c *wire.Call, enable bool, ref string) (any, error) {
	c.SetKey(ref, "")
	op := c.KMS.DisableKey
	if enable {
		op = c.KMS.EnableKey
	}
	if _, err := op(c.Ctx, &provider.KeyIdRequest{KeyId: ref}); err != nil {
		return nil, err
	}
	return object{}, nil
}

// batchState changes the keys (all authorized by the pipeline) in order;
// the first failure stops the batch (earlier keys stay changed).
func batchState(c *wire.Call, enable bool, req *keyIDsRequest) (any, error) {
	for _, id := range req.KeyIds {
		if _, err := setState(c, enable, id); err != nil {
			return nil, err
		}
	}
	c.SetKey("", "")
	return object{}, nil
}

// scheduleKeyDeletion follows Tencent: the key must be Disabled first,
// checked by the core in the write that schedules it (NotEnabled), so a
// key enabled meanwhile (by another request or process) is not scheduled.
func scheduleKeyDeletion(c *wire.Call, req *scheduleKeyDeletionRequest) (any, error) {
	id, err := c.KMS.ResolveKeyId(c.Ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	c.SetKey(id, "")
	preq := &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: int(*req.PendingWindowInDays), NotEnabled: true}
	if _, err := c.KMS.ScheduleKeyDeletion(c.Ctx, preq); errors.Is(err, provider.ErrKeyEnabled) {
		return nil, errorf(CodeCmkShouldBeDisabled, "the key %s is Enabled: disable it before scheduling its deletion", id)
	} else if err != nil {
		return nil, err
	}
	d, err := c.KMS.DescribeKey(c.Ctx, &provider.KeyIdRequest{KeyId: id})
	if err != nil {
		return nil, err
	}
	return object{"DeletionDate": unixTime(d.KeyMetadata.DeleteDate), "KeyId": id}, nil
}

// cancelKeyDeletion follows Tencent: the key comes back Disabled, in the
// one metadata write that cancels the deletion.
func cancelKeyDeletion(c *wire.Call, ref string) (any, error) {
	id, err := c.KMS.ResolveKeyId(c.Ctx, ref)
	if err != nil {
		return nil, err
	}
	c.SetKey(id, "")
	if _, err := c.KMS.CancelKeyDeletionToDisabled(c.Ctx, &provider.KeyIdRequest{KeyId: id}); err != nil {
		return nil, err
	}
	return object{"KeyId": id}, nil
}

// replacedAliases is UpdateAlias's More: the key's Tencent-style aliases
// the new one replaces (a key has one alias on Tencent's API), for the
// pipeline to authorize before anything changes.
func replacedAliases(c *wire.Call, req *updateAliasRequest) ([]wire.Touched, error) {
	id, err := c.KMS.ResolveKeyId(c.Ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	req.keyID = id
	alias := aliasName(req.Alias)
	switch cur, err := c.KMS.ResolveKeyId(c.Ctx, alias); {
	case err == nil && cur == id:
		req.noop = true
		return nil, nil
	case err == nil:
		return nil, provider.NewError(provider.CodeAliasExists, "the alias %s already names another key", req.Alias)
	case !isCode(err, provider.CodeAliasNotFound):
		return nil, err
	}
	old, err := c.KMS.ListAliasesByKeyId(c.Ctx, &provider.ListAliasesByKeyIdRequest{KeyId: id, PageSize: new(100)})
	if err != nil {
		return nil, err
	}
	var touched []wire.Touched
	for _, a := range old.Aliases.Alias {
		if n := strings.TrimPrefix(a.AliasName, "alias/"); a.AliasName != alias && aliasPattern.MatchString(n) {
			touched = append(touched, wire.Touched{Alias: a.AliasName})
			req.replaced = append(req.replaced, a.AliasName)
		}
	}
	return touched, nil
}

// updateAlias gives the key the new alias and deletes the aliases it
// replaces (all authorized by the pipeline).
func updateAlias(c *wire.Call, req *updateAliasRequest) (any, error) {
	c.SetKey(req.keyID, "")
	if req.noop {
		return object{}, nil
	}
	if _, err := c.KMS.CreateAlias(c.Ctx, &provider.AliasRequest{AliasName: aliasName(req.Alias), KeyId: req.keyID}); err != nil {
		return nil, err
	}
	for _, name := range req.replaced {
		if _, err := c.KMS.DeleteAlias(c.Ctx, &provider.DeleteAliasRequest{AliasName: name}); err != nil && !isCode(err, provider.CodeAliasNotFound) {
			return nil, err
		}
	}
	return object{}, nil
}

func getKeyRotationStatus(c *wire.Call, ref string) (any, error) {
	d, err := c.KMS.DescribeKey(c.Ctx, &provider.KeyIdRequest{KeyId: ref})
	if err != nil {
		return nil, err
	}
	c.SetKey(d.KeyMetadata.KeyId, "")
	return object{"KeyRotationEnabled": d.KeyMetadata.AutomaticRotation == "Enabled"}, nil
}

func enableKeyRotation(c *wire.Call, req *enableKeyRotationRequest) (any, error) {
	days := uint64(365)
	if req.RotateDays != nil {
		days = *req.RotateDays
	}
	return rotation(c, &provider.UpdateRotationPolicyRequest{KeyId: req.KeyId, EnableAutomaticRotation: true, RotationInterval: fmt.Sprintf("%dd", days)})
}

// rotation sets a key's rotation policy.
func rotation(c *wire.Call, preq *provider.UpdateRotationPolicyRequest) (any, error) {
	c.SetKey(preq.KeyId, "")
	if _, err := c.KMS.UpdateRotationPolicy(c.Ctx, preq); err != nil {
		return nil, err
	}
	return object{}, nil
}
