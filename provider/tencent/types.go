package tencent

// The request and response shapes of the Tencent actions (field names are
// the wire names).

type tagParam struct {
	TagKey   string
	TagValue string
}

type createKeyRequest struct {
	Alias        string
	Description  string
	KeyUsage     string
	Type         *uint64
	Tags         []tagParam
	HsmClusterId string
}

type createKeyResponse struct {
	KeyId        string
	Alias        string
	CreateTime   uint64
	Description  string
	KeyState     string
	KeyUsage     string
	TagCode      uint64
	TagMsg       string
	HsmClusterId string
}

type keyIDRequest struct{ KeyId string }
type keyIDsRequest struct{ KeyIds []string }
type emptyRequest struct{}
type emptyResponse struct{}

type keyMetadata struct {
	KeyId              string
	Alias              string
	CreateTime         uint64
	Description        string
	KeyState           string
	KeyUsage           string
	Type               int64
	CreatorUin         uint64
	KeyRotationEnabled bool
	Owner              string
	NextRotateTime     uint64
	DeletionDate       uint64
	Origin             string
	ValidTo            uint64
	ResourceId         string
	HsmClusterId       string
}

type describeKeyResponse struct{ KeyMetadata keyMetadata }
type describeKeysResponse struct{ KeyMetadatas []keyMetadata }

type listKeysRequest struct {
	Offset       *uint64
	Limit        *uint64
	Role         *uint64
	HsmClusterId string
}

type keyRef struct{ KeyId string }

type listKeysResponse struct {
	Keys       []keyRef
	TotalCount uint64
}

type scheduleKeyDeletionRequest struct {
	KeyId               string
	PendingWindowInDays *uint64
}

type scheduleKeyDeletionResponse struct {
	DeletionDate uint64
	KeyId        string
}

type keyIDResponse struct{ KeyId string }

type updateAliasRequest struct {
	Alias string
	KeyId string
}

type rotationStatusResponse struct{ KeyRotationEnabled bool }

type enableKeyRotationRequest struct {
	KeyId      string
	RotateDays *uint64
}

type generateDataKeyRequest struct {
	KeyId               string
	KeySpec             string
	NumberOfBytes       *uint64
	EncryptionContext   string
	EncryptionPublicKey string
	EncryptionAlgorithm string
}

type generateDataKeyResponse struct {
	KeyId          string
	Plaintext      string
	CiphertextBlob string
}

type encryptRequest struct {
	KeyId             string
	Plaintext         string
	EncryptionContext string
}

type encryptResponse struct {
	CiphertextBlob string
	KeyId          string
}

type decryptRequest struct {
	CiphertextBlob      string
	EncryptionContext   string
	EncryptionPublicKey string
	EncryptionAlgorithm string
}

type decryptResponse struct {
	KeyId     string
	Plaintext string
}

type reEncryptRequest struct {
	CiphertextBlob               string
	DestinationKeyId             string
	SourceEncryptionContext      string
	DestinationEncryptionContext string
}

type reEncryptResponse struct {
	CiphertextBlob string
	KeyId          string
	SourceKeyId    string
	ReEncrypted    bool
}

type generateRandomRequest struct{ NumberOfBytes *uint64 }
type generateRandomResponse struct{ Plaintext string }

type serviceStatusResponse struct {
	ServiceEnabled      bool
	InvalidType         int64
	UserLevel           uint64
	ExclusiveVSMEnabled bool
	ExclusiveHSMEnabled bool
}

// namedKey is a request that names one key in its KeyId parameter: the
// handler records the key as named before the action runs (without
// reflection over the request).
type namedKey interface{ namedKeyId() string }

func (r *keyIDRequest) namedKeyId() string               { return r.KeyId }
func (r *scheduleKeyDeletionRequest) namedKeyId() string { return r.KeyId }
func (r *updateAliasRequest) namedKeyId() string         { return r.KeyId }
func (r *enableKeyRotationRequest) namedKeyId() string   { return r.KeyId }
func (r *generateDataKeyRequest) namedKeyId() string     { return r.KeyId }
func (r *encryptRequest) namedKeyId() string             { return r.KeyId }
