package awskms

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// The one key shape the core makes, in AWS's names.
const (
	keySpecSymmetric = "SYMMETRIC_DEFAULT"
	keyUsageEncrypt  = "ENCRYPT_DECRYPT"
	originKMS        = "AWS_KMS"
)

// AWS's ScheduleKeyDeletion window and EnableKeyRotation period; the
// core rotates at most every 365 days.
const (
	minPendingDays  = 7
	maxPendingDays  = 30
	minRotationDays = 90
	maxRotationDays = provider.MaxRotationDays
	defaultRotation = 365
)

// keyMetadata is AWS's KeyMetadata.
type keyMetadata struct {
	AWSAccountId          string
	Arn                   string
	CreationDate          float64
	CustomerMasterKeySpec string
	DeletionDate          float64 `json:",omitempty"`
	Description           string
	Enabled               bool
	EncryptionAlgorithms  []string
	KeyId                 string
	KeyManager            string
	KeySpec               string
	KeyState              string
	KeyUsage              string
	MultiRegion           bool
	Origin                string
}

// epoch is an ISO time of the core as AWS's epoch seconds (0 if absent).
func epoch(iso string) float64 {
	t, err := time.Parse(time.RFC3339, iso)
	if err != nil {
		return 0
	}
	return float64(t.Unix())
}

func (c *call) metadata(m provider.KeyMetadata) keyMetadata {
	c.key(m.KeyId, m.PrimaryKeyVersion)
	return keyMetadata{
		AWSAccountId: c.refs.account, Arn: c.refs.keyArn(m.KeyId), CreationDate: epoch(m.CreationDate),
		CustomerMasterKeySpec: keySpecSymmetric, DeletionDate: epoch(m.DeleteDate), Description: m.Description,
		Enabled: m.KeyState == provider.StateEnabled, EncryptionAlgorithms: []string{keySpecSymmetric}, KeyId: m.KeyId,
		KeyManager: "CUSTOMER", KeySpec: keySpecSymmetric, KeyState: m.KeyState, KeyUsage: keyUsageEncrypt, Origin: originKMS,
	}
}

type tag struct{ TagKey, TagValue string }

type createKeyRequest struct {
	Description                    string `help:"free text"`
	KeyUsage                       string `help:"ENCRYPT_DECRYPT (the only one)"`
	KeySpec                        string `help:"SYMMETRIC_DEFAULT (the only one)"`
	CustomerMasterKeySpec          string `help:"SYMMETRIC_DEFAULT (the only one; KeySpec's old name)"`
	Origin                         string `help:"AWS_KMS (the only one)"`
	Policy                         string `help:"not supported: access is the access key's policy"`
	BypassPolicyLockoutSafetyCheck bool   `help:"not supported"`
	Tags                           []tag  `help:"JSON list of {\"TagKey\":\"k\",\"TagValue\":\"v\"}"`
	MultiRegion                    bool   `help:"false (the only one)"`
	CustomKeyStoreId               string `help:"not supported"`
	XksKeyId                       string `help:"not supported"`
	tags                           map[string]string
}

func (r *createKeyRequest) prepare(refs) error {
	for _, err := range []error{
		oneOf("KeyUsage", r.KeyUsage, keyUsageEncrypt),
		oneOf("KeySpec", r.KeySpec, keySpecSymmetric),
		oneOf("CustomerMasterKeySpec", r.CustomerMasterKeySpec, keySpecSymmetric),
		oneOf("Origin", r.Origin, originKMS),
	} {
		if err != nil {
			return err
		}
	}
	switch {
	case r.Policy != "" || r.BypassPolicyLockoutSafetyCheck:
		return unsupported("Policy", "key policies are not supported; what an access key may do is its policy (p11kms accesskey create --actions --keys)")
	case r.MultiRegion:
		return unsupported("MultiRegion", "multi-Region keys are not supported; accepted false")
	case r.CustomKeyStoreId != "" || r.XksKeyId != "":
		return unsupported("CustomKeyStoreId", "every key is in this server's PKCS#11 token; custom key stores are not supported")
	}
	var err error
	r.tags, err = tagMap("Tags", r.Tags)
	return err
}

type keyRequest struct {
	KeyId       string   `cli:"required" help:"key id, key ARN, alias/<name> or alias ARN"`
	GrantTokens []string `help:"not supported (p11kms issues no grants): leave out"`
}

func (r *keyRequest) prepare(x refs) error {
	if err := noGrants(r.GrantTokens); err != nil {
		return err
	}
	return x.coreRef("KeyId", &r.KeyId)
}

func keyTouched(r *keyRequest) wire.Touched { return keyParam(&r.KeyId) }

type keyMetadataResponse struct{ KeyMetadata keyMetadata }

type keyArnResponse struct{ KeyId string }

type empty struct{}

type listKeysRequest struct {
	Limit   *int                `help:"1 to 1000 (default 100; a page holds at most 100)"`
	Marker  string              `help:"the NextMarker of the previous page"`
	visible provider.Visibility // set by authorization: what the policy lets the caller see
}

type keyListEntry struct{ KeyId, KeyArn string }

type listKeysResponse struct {
	Keys       []keyListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

type scheduleDeletionRequest struct {
	KeyId               string `cli:"required" help:"key id, key ARN, alias/<name> or alias ARN"`
	PendingWindowInDays *int   `help:"7 to 30 (default 30)"`
}

func (r *scheduleDeletionRequest) prepare(x refs) error {
	if err := intRange("PendingWindowInDays", r.PendingWindowInDays, minPendingDays, maxPendingDays); err != nil {
		return err
	}
	return x.coreRef("KeyId", &r.KeyId)
}

type scheduleDeletionResponse struct {
	KeyId               string
	DeletionDate        float64
	KeyState            string
	PendingWindowInDays int
}

type enableRotationRequest struct {
	KeyId                string `cli:"required" help:"key id, key ARN, alias/<name> or alias ARN"`
	RotationPeriodInDays *int   `help:"90 to 365 (default 365)"`
}

func (r *enableRotationRequest) prepare(x refs) error {
	if r.RotationPeriodInDays != nil && (*r.RotationPeriodInDays < minRotationDays || *r.RotationPeriodInDays > maxRotationDays) {
		return invalid("RotationPeriodInDays", "%d: accepted an integer from %d to %d (AWS allows up to 2560; this KMS rotates at least every %d days)",
			*r.RotationPeriodInDays, minRotationDays, maxRotationDays, maxRotationDays)
	}
	return x.coreRef("KeyId", &r.KeyId)
}

type rotationStatusResponse struct {
	KeyId                string
	KeyRotationEnabled   bool
	RotationPeriodInDays int     `json:",omitempty"`
	NextRotationDate     float64 `json:",omitempty"`
}

type listRotationsRequest struct {
	KeyId  string `cli:"required" help:"key id, key ARN, alias/<name> or alias ARN"`
	Limit  *int   `help:"1 to 1000 (default 100; a page holds at most 100)"`
	Marker string `help:"the NextMarker of the previous page"`
}

func (r *listRotationsRequest) prepare(x refs) error { return x.coreRef("KeyId", &r.KeyId) }

type rotation struct {
	KeyId        string
	RotationDate float64
}

type listRotationsResponse struct {
	Rotations  []rotation
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func init() {
	register(map[string]*op{
		"CreateKey": operation(nil, func(c *call, r *createKeyRequest) (any, error) {
			resp, err := c.kms.CreateKey(c.ctx, &provider.CreateKeyRequest{Description: r.Description, Tags: r.tags})
			if err != nil {
				return nil, err
			}
			return &keyMetadataResponse{c.metadata(resp.KeyMetadata)}, nil
		}).says("Create a KMS key (SYMMETRIC_DEFAULT: AES-256 in the token)"),
		"DescribeKey": operation(keyTouched, func(c *call, r *keyRequest) (any, error) {
			return c.describe(r.KeyId)
		}).says("Describe a key"),
		"ListKeys":            operation(func(r *listKeysRequest) wire.Touched { return wire.Touched{Visible: &r.visible} }, (*call).listKeys).says("List keys (Limit, Marker)"),
		"EnableKey":           stateChange((*provider.Service).EnableKey, false).says("Enable a key"),
		"DisableKey":          stateChange((*provider.Service).DisableKey, false).says("Disable a key"),
		"CancelKeyDeletion":   stateChange((*provider.Service).CancelKeyDeletionToDisabled, true).says("Cancel a scheduled destruction (the key is then Disabled, as on AWS)"),
		"ScheduleKeyDeletion": operation(func(r *scheduleDeletionRequest) wire.Touched { return keyParam(&r.KeyId) }, (*call).scheduleDeletion).says("Schedule a key's destruction after 7-30 days"),
		"EnableKeyRotation": operation(func(r *enableRotationRequest) wire.Touched { return keyParam(&r.KeyId) }, func(c *call, r *enableRotationRequest) (any, error) {
			days := defaultRotation
			if r.RotationPeriodInDays != nil {
				days = *r.RotationPeriodInDays
			}
			return c.rotationPolicy(r.KeyId, true, fmt.Sprintf("%dd", days))
		}).says("Rotate a key automatically every 90-365 days"),
		"DisableKeyRotation": operation(keyTouched, func(c *call, r *keyRequest) (any, error) {
			return c.rotationPolicy(r.KeyId, false, "")
		}).says("Stop automatic rotation"),
		"GetKeyRotationStatus": operation(keyTouched, (*call).rotationStatus).says("Whether and when a key rotates"),
		"RotateKeyOnDemand": operation(keyTouched, func(c *call, r *keyRequest) (any, error) {
			v, err := c.kms.CreateKeyVersion(c.ctx, &provider.KeyIdRequest{KeyId: r.KeyId})
			if err != nil {
				return nil, err
			}
			c.key(v.KeyVersion.KeyId, v.KeyVersion.KeyVersionId)
			return &keyArnResponse{c.refs.keyArn(v.KeyVersion.KeyId)}, nil
		}).says("Rotate a key now"),
		"ListKeyRotations": operation(func(r *listRotationsRequest) wire.Touched { return keyParam(&r.KeyId) }, (*call).listRotations).says("List a key's rotations"),
	})
}

// stateChange is an operation on one key that answers with nothing but
// the key (CancelKeyDeletion: its ARN; Enable/DisableKey: {}).
func stateChange(change func(*provider.Service, context.Context, *provider.KeyIdRequest) (*provider.RequestIdResponse, error), withArn bool) *op {
	return operation(keyTouched, func(c *call, r *keyRequest) (any, error) {
		if _, err := change(c.kms, c.ctx, &provider.KeyIdRequest{KeyId: r.KeyId}); err != nil {
			return nil, err
		}
		if !withArn {
			c.key(r.KeyId, "")
			return &empty{}, nil
		}
		d, err := c.describe(r.KeyId)
		if err != nil {
			return nil, err
		}
		return &keyArnResponse{d.KeyMetadata.Arn}, nil
	})
}

func (c *call) describe(ref string) (*keyMetadataResponse, error) {
	resp, err := c.kms.DescribeKey(c.ctx, &provider.KeyIdRequest{KeyId: ref})
	if err != nil {
		return nil, err
	}
	return &keyMetadataResponse{c.metadata(resp.KeyMetadata)}, nil
}

func (c *call) listKeys(r *listKeysRequest) (any, error) {
	off, limit, err := window(r.Limit, r.Marker)
	if err != nil {
		return nil, err
	}
	keys, next, err := slice(off, limit, func(number, size int) ([]provider.KeyRef, int, error) {
		resp, err := c.kms.ListKeys(c.ctx, &provider.ListKeysRequest{PageNumber: &number, PageSize: &size, Visible: r.visible})
		if err != nil {
			return nil, 0, err
		}
		return resp.Keys.Key, resp.TotalCount, nil
	})
	if err != nil {
		return nil, err
	}
	out := &listKeysResponse{Keys: []keyListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyListEntry{KeyId: k.KeyId, KeyArn: c.refs.keyArn(k.KeyId)})
	}
	return out, nil
}

func (c *call) scheduleDeletion(r *scheduleDeletionRequest) (any, error) {
	days := maxPendingDays
	if r.PendingWindowInDays != nil {
		days = *r.PendingWindowInDays
	}
	if _, err := c.kms.ScheduleKeyDeletion(c.ctx, &provider.ScheduleKeyDeletionRequest{KeyId: r.KeyId, PendingWindowInDays: days}); err != nil {
		return nil, err
	}
	d, err := c.describe(r.KeyId)
	if err != nil {
		return nil, err
	}
	m := d.KeyMetadata
	return &scheduleDeletionResponse{KeyId: m.Arn, DeletionDate: m.DeletionDate, KeyState: m.KeyState, PendingWindowInDays: days}, nil
}

func (c *call) rotationPolicy(ref string, enable bool, interval string) (any, error) {
	_, err := c.kms.UpdateRotationPolicy(c.ctx, &provider.UpdateRotationPolicyRequest{KeyId: ref, EnableAutomaticRotation: enable, RotationInterval: interval})
	if err != nil {
		return nil, err
	}
	return &empty{}, nil
}

func (c *call) rotationStatus(r *keyRequest) (any, error) {
	resp, err := c.kms.DescribeKey(c.ctx, &provider.KeyIdRequest{KeyId: r.KeyId})
	if err != nil {
		return nil, err
	}
	m := resp.KeyMetadata
	c.key(m.KeyId, m.PrimaryKeyVersion)
	out := &rotationStatusResponse{KeyId: c.refs.keyArn(m.KeyId), KeyRotationEnabled: m.AutomaticRotation == "Enabled"}
	if out.KeyRotationEnabled {
		secs, _ := strconv.Atoi(strings.TrimSuffix(m.RotationInterval, "s"))
		out.RotationPeriodInDays, out.NextRotationDate = secs/86400, epoch(m.NextRotationDate)
	}
	return out, nil
}

// listRotations lists the versions made after the first, oldest first.
func (c *call) listRotations(r *listRotationsRequest) (any, error) {
	off, limit, err := window(r.Limit, r.Marker)
	if err != nil {
		return nil, err
	}
	vs, next, err := slice(off+1, limit, func(number, size int) ([]provider.KeyVersion, int, error) {
		resp, err := c.kms.ListKeyVersions(c.ctx, &provider.ListKeyVersionsRequest{KeyId: r.KeyId, PageNumber: &number, PageSize: &size})
		if err != nil {
			return nil, 0, err
		}
		return resp.KeyVersions.KeyVersion, resp.TotalCount, nil
	})
	if err != nil {
		return nil, err
	}
	if next != "" {
		n, _ := strconv.Atoi(strings.TrimPrefix(next, markerPrefix))
		next = markerPrefix + strconv.Itoa(n-1)
	}
	out := &listRotationsResponse{Rotations: []rotation{}, NextMarker: next, Truncated: next != ""}
	for _, v := range vs {
		c.key(v.KeyId, "")
		out.Rotations = append(out.Rotations, rotation{KeyId: c.refs.keyArn(v.KeyId), RotationDate: epoch(v.CreationDate)})
	}
	return out, nil
}
