package aliyun_test

import (
	"encoding/json"
	"errors"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	lkms "github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
)

// The SDK variants the tests drive.
const (
	variantACS3   = "v3-ACS3" // kms-20160120/v3, default signature
	variantRPC    = "v3-RPC"  // SignatureAlgorithm "v2": RPC HMAC-SHA1
	variantACS4   = "v3-ACS4" // SignatureVersion "v4"
	variantLegacy = "legacy"  // alibaba-cloud-sdk-go/services/kms
)

var variants = []string{variantACS3, variantRPC, variantACS4, variantLegacy}

// What the tests read back from the SDKs' typed responses.
type (
	keyInfo struct{ KeyId, Arn, KeyState, PrimaryKeyVersion, Description, KeySpec, Origin string }
	dataKey struct{ KeyId, KeyVersionId, Plaintext, CiphertextBlob, ExportedDataKey string }
	alias   struct{ AliasName, KeyId string }
)

// kmsClient is the operations the tests call, over one SDK variant.
type kmsClient interface {
	CreateKey(desc string) (keyInfo, error)
	DescribeKey(id string) (keyInfo, error)
	ListKeys(page, size int) ([]string, int, error)
	EnableKey(id string) error
	DisableKey(id string) error
	ScheduleKeyDeletion(id string, days int) error
	CancelKeyDeletion(id string) error
	CreateKeyVersion(id string) (string, error)
	CreateAlias(name, id string) error
	UpdateAlias(name, id string) error
	DeleteAlias(name string) error
	ListAliases() ([]alias, error)
	// GenerateDataKey sends NumberOfBytes unless n is nil (0 is sent).
	GenerateDataKey(id string, n *int, ec map[string]string) (dataKey, error)
	GenerateAndExportDataKey(id, pub, spec, alg string, ec map[string]string) (dataKey, error)
	ExportDataKey(blob, pub, spec, alg string, ec map[string]string) (dataKey, error)
	Encrypt(id, plaintext string, ec map[string]string) (dataKey, error)
	Decrypt(blob string, ec map[string]string) (dataKey, error)
	ReEncrypt(blob string, srcEC map[string]string, dst string, dstEC map[string]string) (dataKey, error)
}

// newClient returns a client of the variant for the server at addr.
func newClient(t testing.TB, variant, addr, ak, secret string) kmsClient {
	t.Helper()
	if variant == variantLegacy {
		c, err := lkms.NewClientWithAccessKey("cn-hangzhou", ak, secret)
		if err != nil {
			t.Fatal(err)
		}
		return &legacyClient{c: c, addr: addr}
	}
	cfg := &openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
		AccessKeyId: tea.String(ak), AccessKeySecret: tea.String(secret)}
	switch variant {
	case variantRPC:
		cfg.SignatureAlgorithm = tea.String("v2")
	case variantACS4:
		cfg.SignatureVersion = tea.String("v4")
	}
	c, err := kms.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &v3Client{c: c}
}

// errCode returns the Alibaba error code of an SDK error, insisting on the
// SDK's typed errors: *tea.SDKError (v3) or *errors.ServerError (legacy).
func errCode(t testing.TB, err error) string {
	t.Helper()
	var te *tea.SDKError
	if errors.As(err, &te) {
		return tea.StringValue(te.Code)
	}
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return se.ErrorCode()
	}
	t.Fatalf("not an SDK server error: %T %v", err, err)
	return ""
}

func anyMap(m map[string]string) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func jsonString(m map[string]string) string {
	if m == nil {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// v3Client drives github.com/alibabacloud-go/kms-20160120/v3.
type v3Client struct{ c *kms.Client }

func v3Key(m *kms.CreateKeyResponseBodyKeyMetadata) keyInfo {
	return keyInfo{KeyId: tea.StringValue(m.KeyId), Arn: tea.StringValue(m.Arn), KeyState: tea.StringValue(m.KeyState),
		PrimaryKeyVersion: tea.StringValue(m.PrimaryKeyVersion), Description: tea.StringValue(m.Description),
		KeySpec: tea.StringValue(m.KeySpec), Origin: tea.StringValue(m.Origin)}
}

func (v *v3Client) CreateKey(desc string) (keyInfo, error) {
	// As the capture: the SDK's usual CreateKey, Tags and all.
	r, err := v.c.CreateKey(&kms.CreateKeyRequest{Description: tea.String(desc), KeySpec: tea.String("Aliyun_AES_256"),
		KeyUsage: tea.String("ENCRYPT/DECRYPT"), Origin: tea.String("Aliyun_KMS"), ProtectionLevel: tea.String("HSM"),
		EnableAutomaticRotation: tea.Bool(false), Tags: tea.String(`[{"TagKey":"env","TagValue":"test"}]`)})
	if err != nil {
		return keyInfo{}, err
	}
	return v3Key(r.Body.KeyMetadata), nil
}

func (v *v3Client) DescribeKey(id string) (keyInfo, error) {
	r, err := v.c.DescribeKey(&kms.DescribeKeyRequest{KeyId: tea.String(id)})
	if err != nil {
		return keyInfo{}, err
	}
	m := r.Body.KeyMetadata
	return keyInfo{KeyId: tea.StringValue(m.KeyId), Arn: tea.StringValue(m.Arn), KeyState: tea.StringValue(m.KeyState),
		PrimaryKeyVersion: tea.StringValue(m.PrimaryKeyVersion), Description: tea.StringValue(m.Description),
		KeySpec: tea.StringValue(m.KeySpec), Origin: tea.StringValue(m.Origin)}, nil
}

func (v *v3Client) ListKeys(page, size int) ([]string, int, error) {
	r, err := v.c.ListKeys(&kms.ListKeysRequest{PageNumber: tea.Int32(int32(page)), PageSize: tea.Int32(int32(size))})
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	for _, k := range r.Body.Keys.Key {
		ids = append(ids, tea.StringValue(k.KeyId))
	}
	return ids, int(tea.Int32Value(r.Body.TotalCount)), nil
}

func (v *v3Client) EnableKey(id string) error {
	_, err := v.c.EnableKey(&kms.EnableKeyRequest{KeyId: tea.String(id)})
	return err
}

func (v *v3Client) DisableKey(id string) error {
	_, err := v.c.DisableKey(&kms.DisableKeyRequest{KeyId: tea.String(id)})
	return err
}

func (v *v3Client) ScheduleKeyDeletion(id string, days int) error {
	_, err := v.c.ScheduleKeyDeletion(&kms.ScheduleKeyDeletionRequest{KeyId: tea.String(id), PendingWindowInDays: tea.Int32(int32(days))})
	return err
}

func (v *v3Client) CancelKeyDeletion(id string) error {
	_, err := v.c.CancelKeyDeletion(&kms.CancelKeyDeletionRequest{KeyId: tea.String(id)})
	return err
}

func (v *v3Client) CreateKeyVersion(id string) (string, error) {
	r, err := v.c.CreateKeyVersion(&kms.CreateKeyVersionRequest{KeyId: tea.String(id)})
	if err != nil {
		return "", err
	}
	return tea.StringValue(r.Body.KeyVersion.KeyVersionId), nil
}

func (v *v3Client) CreateAlias(name, id string) error {
	_, err := v.c.CreateAlias(&kms.CreateAliasRequest{AliasName: tea.String(name), KeyId: tea.String(id)})
	return err
}

func (v *v3Client) UpdateAlias(name, id string) error {
	_, err := v.c.UpdateAlias(&kms.UpdateAliasRequest{AliasName: tea.String(name), KeyId: tea.String(id)})
	return err
}

func (v *v3Client) DeleteAlias(name string) error {
	_, err := v.c.DeleteAlias(&kms.DeleteAliasRequest{AliasName: tea.String(name)})
	return err
}

func (v *v3Client) ListAliases() ([]alias, error) {
	r, err := v.c.ListAliases(&kms.ListAliasesRequest{PageSize: tea.Int32(100)})
	if err != nil {
		return nil, err
	}
	var out []alias
	for _, a := range r.Body.Aliases.Alias {
		out = append(out, alias{AliasName: tea.StringValue(a.AliasName), KeyId: tea.StringValue(a.KeyId)})
	}
	return out, nil
}

func (v *v3Client) GenerateDataKey(id string, n *int, ec map[string]string) (dataKey, error) {
	req := &kms.GenerateDataKeyRequest{KeyId: tea.String(id), KeySpec: tea.String("AES_256"), EncryptionContext: anyMap(ec)}
	if n != nil {
		req.NumberOfBytes = tea.Int32(int32(*n))
	}
	r, err := v.c.GenerateDataKey(req)
	if err != nil {
		return dataKey{}, err
	}
	b := r.Body
	return dataKey{KeyId: tea.StringValue(b.KeyId), KeyVersionId: tea.StringValue(b.KeyVersionId),
		Plaintext: tea.StringValue(b.Plaintext), CiphertextBlob: tea.StringValue(b.CiphertextBlob)}, nil
}

func (v *v3Client) GenerateAndExportDataKey(id, pub, spec, alg string, ec map[string]string) (dataKey, error) {
	r, err := v.c.GenerateAndExportDataKey(&kms.GenerateAndExportDataKeyRequest{KeyId: tea.String(id), KeySpec: tea.String("AES_256"),
		PublicKeyBlob: tea.String(pub), WrappingKeySpec: tea.String(spec), WrappingAlgorithm: tea.String(alg), EncryptionContext: anyMap(ec)})
	if err != nil {
		return dataKey{}, err
	}
	b := r.Body
	return dataKey{KeyId: tea.StringValue(b.KeyId), KeyVersionId: tea.StringValue(b.KeyVersionId),
		CiphertextBlob: tea.StringValue(b.CiphertextBlob), ExportedDataKey: tea.StringValue(b.ExportedDataKey)}, nil
}

func (v *v3Client) ExportDataKey(blob, pub, spec, alg string, ec map[string]string) (dataKey, error) {
	r, err := v.c.ExportDataKey(&kms.ExportDataKeyRequest{CiphertextBlob: tea.String(blob), PublicKeyBlob: tea.String(pub),
		WrappingKeySpec: tea.String(spec), WrappingAlgorithm: tea.String(alg), EncryptionContext: anyMap(ec)})
	if err != nil {
		return dataKey{}, err
	}
	b := r.Body
	return dataKey{KeyId: tea.StringValue(b.KeyId), KeyVersionId: tea.StringValue(b.KeyVersionId),
		ExportedDataKey: tea.StringValue(b.ExportedDataKey)}, nil
}

func (v *v3Client) Encrypt(id, plaintext string, ec map[string]string) (dataKey, error) {
	r, err := v.c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(id), Plaintext: tea.String(plaintext), EncryptionContext: anyMap(ec)})
	if err != nil {
		return dataKey{}, err
	}
	b := r.Body
	return dataKey{KeyId: tea.StringValue(b.KeyId), KeyVersionId: tea.StringValue(b.KeyVersionId),
		CiphertextBlob: tea.StringValue(b.CiphertextBlob)}, nil
}

func (v *v3Client) Decrypt(blob string, ec map[string]string) (dataKey, error) {
	r, err := v.c.Decrypt(&kms.DecryptRequest{CiphertextBlob: tea.String(blob), EncryptionContext: anyMap(ec)})
	if err != nil {
		return dataKey{}, err
	}
	b := r.Body
	return dataKey{KeyId: tea.StringValue(b.KeyId), KeyVersionId: tea.StringValue(b.KeyVersionId),
		Plaintext: tea.StringValue(b.Plaintext)}, nil
}

func (v *v3Client) ReEncrypt(blob string, srcEC map[string]string, dst string, dstEC map[string]string) (dataKey, error) {
	r, err := v.c.ReEncrypt(&kms.ReEncryptRequest{CiphertextBlob: tea.String(blob), SourceEncryptionContext: anyMap(srcEC),
		DestinationKeyId: tea.String(dst), DestinationEncryptionContext: anyMap(dstEC)})
	if err != nil {
		return dataKey{}, err
	}
	b := r.Body
	return dataKey{KeyId: tea.StringValue(b.KeyId), KeyVersionId: tea.StringValue(b.KeyVersionId),
		CiphertextBlob: tea.StringValue(b.CiphertextBlob)}, nil
}

// legacyClient drives github.com/aliyun/alibaba-cloud-sdk-go/services/kms.
type legacyClient struct {
	c    *lkms.Client
	addr string
}

// at points a request at the test server.
func (l *legacyClient) at(r interface {
	SetDomain(string)
	SetScheme(string)
}) {
	r.SetDomain(l.addr)
	r.SetScheme("http")
}

func legacyKey(m lkms.KeyMetadata) keyInfo {
	return keyInfo{KeyId: m.KeyId, Arn: m.Arn, KeyState: m.KeyState, PrimaryKeyVersion: m.PrimaryKeyVersion,
		Description: m.Description, KeySpec: m.KeySpec, Origin: m.Origin}
}

func (l *legacyClient) CreateKey(desc string) (keyInfo, error) {
	req := lkms.CreateCreateKeyRequest()
	l.at(req)
	req.Description, req.KeySpec, req.KeyUsage = desc, "Aliyun_AES_256", "ENCRYPT/DECRYPT"
	r, err := l.c.CreateKey(req)
	if err != nil {
		return keyInfo{}, err
	}
	return legacyKey(r.KeyMetadata), nil
}

func (l *legacyClient) DescribeKey(id string) (keyInfo, error) {
	req := lkms.CreateDescribeKeyRequest()
	l.at(req)
	req.KeyId = id
	r, err := l.c.DescribeKey(req)
	if err != nil {
		return keyInfo{}, err
	}
	return legacyKey(r.KeyMetadata), nil
}

func (l *legacyClient) ListKeys(page, size int) ([]string, int, error) {
	req := lkms.CreateListKeysRequest()
	l.at(req)
	req.PageNumber, req.PageSize = requests.NewInteger(page), requests.NewInteger(size)
	r, err := l.c.ListKeys(req)
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	for _, k := range r.Keys.Key {
		ids = append(ids, k.KeyId)
	}
	return ids, r.TotalCount, nil
}

func (l *legacyClient) EnableKey(id string) error {
	req := lkms.CreateEnableKeyRequest()
	l.at(req)
	req.KeyId = id
	_, err := l.c.EnableKey(req)
	return err
}

func (l *legacyClient) DisableKey(id string) error {
	req := lkms.CreateDisableKeyRequest()
	l.at(req)
	req.KeyId = id
	_, err := l.c.DisableKey(req)
	return err
}

func (l *legacyClient) ScheduleKeyDeletion(id string, days int) error {
	req := lkms.CreateScheduleKeyDeletionRequest()
	l.at(req)
	req.KeyId, req.PendingWindowInDays = id, requests.NewInteger(days)
	_, err := l.c.ScheduleKeyDeletion(req)
	return err
}

func (l *legacyClient) CancelKeyDeletion(id string) error {
	req := lkms.CreateCancelKeyDeletionRequest()
	l.at(req)
	req.KeyId = id
	_, err := l.c.CancelKeyDeletion(req)
	return err
}

func (l *legacyClient) CreateKeyVersion(id string) (string, error) {
	req := lkms.CreateCreateKeyVersionRequest()
	l.at(req)
	req.KeyId = id
	r, err := l.c.CreateKeyVersion(req)
	if err != nil {
		return "", err
	}
	return r.KeyVersion.KeyVersionId, nil
}

func (l *legacyClient) CreateAlias(name, id string) error {
	req := lkms.CreateCreateAliasRequest()
	l.at(req)
	req.AliasName, req.KeyId = name, id
	_, err := l.c.CreateAlias(req)
	return err
}

func (l *legacyClient) UpdateAlias(name, id string) error {
	req := lkms.CreateUpdateAliasRequest()
	l.at(req)
	req.AliasName, req.KeyId = name, id
	_, err := l.c.UpdateAlias(req)
	return err
}

func (l *legacyClient) DeleteAlias(name string) error {
	req := lkms.CreateDeleteAliasRequest()
	l.at(req)
	req.AliasName = name
	_, err := l.c.DeleteAlias(req)
	return err
}

func (l *legacyClient) ListAliases() ([]alias, error) {
	req := lkms.CreateListAliasesRequest()
	l.at(req)
	req.PageSize = requests.NewInteger(100)
	r, err := l.c.ListAliases(req)
	if err != nil {
		return nil, err
	}
	var out []alias
	for _, a := range r.Aliases.Alias {
		out = append(out, alias{AliasName: a.AliasName, KeyId: a.KeyId})
	}
	return out, nil
}

func (l *legacyClient) GenerateDataKey(id string, n *int, ec map[string]string) (dataKey, error) {
	req := lkms.CreateGenerateDataKeyRequest()
	l.at(req)
	req.KeyId, req.KeySpec, req.EncryptionContext = id, "AES_256", jsonString(ec)
	if n != nil {
		req.NumberOfBytes = requests.NewInteger(*n)
	}
	r, err := l.c.GenerateDataKey(req)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, Plaintext: r.Plaintext, CiphertextBlob: r.CiphertextBlob}, nil
}

func (l *legacyClient) GenerateAndExportDataKey(id, pub, spec, alg string, ec map[string]string) (dataKey, error) {
	req := lkms.CreateGenerateAndExportDataKeyRequest()
	l.at(req)
	req.KeyId, req.KeySpec, req.PublicKeyBlob, req.WrappingKeySpec, req.WrappingAlgorithm = id, "AES_256", pub, spec, alg
	req.EncryptionContext = jsonString(ec)
	r, err := l.c.GenerateAndExportDataKey(req)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, CiphertextBlob: r.CiphertextBlob, ExportedDataKey: r.ExportedDataKey}, nil
}

func (l *legacyClient) ExportDataKey(blob, pub, spec, alg string, ec map[string]string) (dataKey, error) {
	req := lkms.CreateExportDataKeyRequest()
	l.at(req)
	req.CiphertextBlob, req.PublicKeyBlob, req.WrappingKeySpec, req.WrappingAlgorithm = blob, pub, spec, alg
	req.EncryptionContext = jsonString(ec)
	r, err := l.c.ExportDataKey(req)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, ExportedDataKey: r.ExportedDataKey}, nil
}

func (l *legacyClient) Encrypt(id, plaintext string, ec map[string]string) (dataKey, error) {
	req := lkms.CreateEncryptRequest()
	l.at(req)
	req.KeyId, req.Plaintext, req.EncryptionContext = id, plaintext, jsonString(ec)
	r, err := l.c.Encrypt(req)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, CiphertextBlob: r.CiphertextBlob}, nil
}

func (l *legacyClient) Decrypt(blob string, ec map[string]string) (dataKey, error) {
	req := lkms.CreateDecryptRequest()
	l.at(req)
	req.CiphertextBlob, req.EncryptionContext = blob, jsonString(ec)
	r, err := l.c.Decrypt(req)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, Plaintext: r.Plaintext}, nil
}

func (l *legacyClient) ReEncrypt(blob string, srcEC map[string]string, dst string, dstEC map[string]string) (dataKey, error) {
	req := lkms.CreateReEncryptRequest()
	l.at(req)
	req.CiphertextBlob, req.SourceEncryptionContext, req.DestinationKeyId = blob, jsonString(srcEC), dst
	req.DestinationEncryptionContext = jsonString(dstEC)
	r, err := l.c.ReEncrypt(req)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{KeyId: r.KeyId, KeyVersionId: r.KeyVersionId, CiphertextBlob: r.CiphertextBlob}, nil
}
