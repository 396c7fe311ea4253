package provider

import (
	"context"
	"crypto/rand"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/p11kms/p11kms/hsm"
)

// Limits, as the Alibaba Cloud KMS documentation states them.
const (
	MaxEncryptionContextChars = 8192
	MaxPlaintextBytes         = 6144
	MaxDataKeyBytes           = 1024
	MaxDescriptionChars       = 8192
	MinPendingWindowDays      = 7
	MaxPendingWindowDays      = 366
	MinRotationDays           = 7
	MaxRotationDays           = 365
)

// Options configure a Service.
type Options struct {
	Region  string           // for ARNs; default "cn-hangzhou"
	Account string           // for ARNs; default "1234567890123456"
	Creator string           // recorded on new keys; default "p11kms"
	Now     func() time.Time // default time.Now
	// CacheTTL bounds the staleness of cached key metadata and aliases
	// (default DefaultCacheTTL; negative disables the cache).
	CacheTTL time.Duration
	// OrphanGrace is how long Sweep waits before destroying a version
	// object no metadata names (default DefaultOrphanGrace).
	OrphanGrace time.Duration
}

// Service is the KMS over one token. It is safe for concurrent use.
type Service struct {
	tok *hsm.Token
	opt Options

	cache *metaCache

	mu       sync.Mutex
	versions map[[16]byte]versionRef // CMK version handles, by version ID
	// versionLookups and keyLoads let concurrent misses of one version or
	// one key's metadata share a search.
	versionLookups singleflight.Group
	keyLoads       singleflight.Group
	orphans        map[string]time.Time // "<KeyId>/<KeyVersionId>" of unnamed version objects, first seen

	plain plaintextPool // every plaintext buffer the operations hold
}

type versionRef struct {
	keyID  string
	handle hsm.ObjectHandle // the token object
	copy   hsm.ObjectHandle // its session-object copy, 0 until made
}

// New returns the KMS over tok.
func New(tok *hsm.Token, opt Options) *Service {
	if opt.Region == "" {
		opt.Region = "cn-hangzhou"
	}
	if opt.Account == "" {
		opt.Account = "1234567890123456"
	}
	if opt.Creator == "" {
		opt.Creator = "p11kms"
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.CacheTTL == 0 {
		opt.CacheTTL = DefaultCacheTTL
	}
	return &Service{tok: tok, opt: opt, cache: newMetaCache(opt.CacheTTL), versions: map[[16]byte]versionRef{},
		orphans: map[string]time.Time{}}
}

// Region and Account are what this service's ARNs name; dialects whose
// ARNs have another form (AWS: arn:aws:kms:<region>:<account>:...) build
// theirs from them.
func (s *Service) Region() string { return s.opt.Region }

// Account is the account this service's ARNs name (see Region).
func (s *Service) Account() string { return s.opt.Account }

// Token returns the token the service uses.
func (s *Service) Token() *hsm.Token { return s.tok }

func (s *Service) now() time.Time { return s.opt.Now().UTC() }

// NewRequestID returns a fresh RequestId: 122 bits from crypto/rand in
// UUID v4 form (the shape both SDKs accept), so no id tells anything about
// another; a counter would let a caller guess others' ids and count the
// server's requests.
func NewRequestID() string {
	var u uuid.UUID
	_, _ = rand.Read(u[:])  // crypto/rand.Read never fails (it crashes the program instead)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}

// requestIDKey is the context key of WithRequestID.
type requestIDKey struct{}

// WithRequestID returns ctx carrying the RequestId the wire pipeline made
// for one request: the operations put it in their responses, so the
// response body, its header and the audit record show one RequestId,
// made once.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the RequestId ctx carries (WithRequestID), or a fresh
// one for in-process callers that set none.
func RequestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return id
	}
	return NewRequestID()
}

// Ready reports whether the token answers and is logged in.
func (s *Service) Ready(ctx context.Context) error { return s.tok.Ping(ctx) }
