package vod

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// Config configures a Service.
type Config struct {
	// KMS is the key service the media CMK lives in. Required.
	KMS *provider.Service
	// MediaKeyAlias names the media CMK (default MediaKeyAlias). It is
	// created, with a new CMK, on first use.
	MediaKeyAlias string
	// TokenKeyBlob is the CiphertextBlob (base64) of the play-token secret,
	// made by an earlier Service (see TokenKeyFile). It wins over
	// TokenKeyFile.
	TokenKeyBlob string
	// TokenKeyFile is where the play-token secret's CiphertextBlob is kept
	// (conventionally $P11KMS_HOME/vod-token-key.blob). If the file does not
	// exist, the first play-token operation makes a new secret under the
	// media CMK and creates the file (0600; a process that loses a creation
	// race uses the winner's). Nodes that must accept each other's tokens
	// share the file or its content (TokenKeyBlob).
	TokenKeyFile string
	// MaxPlayTokenTTL bounds a play token's lifetime (default
	// DefaultMaxPlayTokenTTL).
	MaxPlayTokenTTL time.Duration
	// FFmpeg is the ffmpeg binary PackageHls runs (default "ffmpeg" from
	// PATH).
	FFmpeg string
	// Logger receives one record per refused key request (never key bytes
	// or tokens); nil discards them.
	Logger *slog.Logger
	// Now is the clock for play tokens (default time.Now).
	Now func() time.Time
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.KMS == nil {
		return errors.New("vod: Config.KMS is required")
	}
	if c.MaxPlayTokenTTL < 0 {
		return errors.New("vod: Config.MaxPlayTokenTTL is negative")
	}
	return nil
}

// Service runs the VOD operations over a KMS. It is safe for concurrent use;
// several Services, in one or many processes, may share one token.
type Service struct {
	kms    *provider.Service
	alias  string
	cfg    Config
	maxTTL time.Duration
	now    func() time.Time
	log    *slog.Logger

	ensure flight // creating the media CMK

	keyMu   sync.Mutex
	keyLoad flight
	hmacKey []byte // play-token HMAC key, once loaded
}

// New returns the VOD service over cfg.KMS. It makes no token call: the
// media CMK and the play-token key are set up on first use, or by Init.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{kms: cfg.KMS, alias: cfg.MediaKeyAlias, cfg: cfg, maxTTL: cfg.MaxPlayTokenTTL, now: cfg.Now, log: cfg.Logger}
	if s.alias == "" {
		s.alias = MediaKeyAlias
	}
	if s.maxTTL == 0 {
		s.maxTTL = DefaultMaxPlayTokenTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Init makes sure the media CMK exists and loads (or creates) the
// play-token key, so that a server fails at start-up rather than on its
// first request.
func (s *Service) Init(ctx context.Context) error {
	if _, err := s.kms.ResolveKeyId(ctx, s.alias); err != nil {
		if provider.ErrorCode(err) != provider.CodeAliasNotFound {
			return err
		}
		if err := s.ensureMediaKey(ctx); err != nil {
			return err
		}
	}
	_, err := s.playKey(ctx)
	return err
}

// KMS returns the key service.
func (s *Service) KMS() *provider.Service { return s.kms }

// flight runs one call at a time; callers that arrive while it runs share
// its result instead of starting another. Nothing is cached after.
type flight struct {
	mu   sync.Mutex
	call *flightCall
}

type flightCall struct {
	done chan struct{}
	err  error
}

func (f *flight) do(ctx context.Context, fn func() error) error {
	f.mu.Lock()
	if c := f.call; c != nil {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &flightCall{done: make(chan struct{})}
	f.call = c
	f.mu.Unlock()
	c.err = fn()
	f.mu.Lock()
	f.call = nil
	f.mu.Unlock()
	close(c.done)
	return c.err
}

// ensureMediaKey creates the media CMK and its alias. Race-safe across
// processes: if another process created the alias first, our new CMK is
// scheduled for deletion and the existing alias is used.
func (s *Service) ensureMediaKey(ctx context.Context) error {
	return s.ensure.do(ctx, func() error {
		if _, err := s.kms.ResolveKeyId(ctx, s.alias); err == nil {
			return nil
		} else if provider.ErrorCode(err) != provider.CodeAliasNotFound {
			return err
		}
		k, err := s.kms.CreateKey(ctx, &provider.CreateKeyRequest{
			Description: "p11kms VOD media key (HLS data keys, play-token secret, download keys)",
		})
		if err != nil {
			return err
		}
		_, err = s.kms.CreateAlias(ctx, &provider.AliasRequest{AliasName: s.alias, KeyId: k.KeyMetadata.KeyId})
		if provider.ErrorCode(err) == provider.CodeAliasExists {
			// Another process won the race: retire our unused key.
			_, _ = s.kms.ScheduleKeyDeletion(ctx, &provider.ScheduleKeyDeletionRequest{
				KeyId: k.KeyMetadata.KeyId, PendingWindowInDays: provider.MinPendingWindowDays})
			return nil
		}
		return err
	})
}

// generate makes an n-byte data key under the media CMK, creating the CMK
// on first use.
func (s *Service) generate(ctx context.Context, n int, ec wrap.EncryptionContext) (*provider.GenerateDataKeyResponse, error) {
	req := &provider.GenerateDataKeyRequest{KeyId: s.alias, NumberOfBytes: &n, EncryptionContext: ec}
	r, err := s.kms.GenerateDataKey(ctx, req)
	if provider.ErrorCode(err) == provider.CodeAliasNotFound {
		if err := s.ensureMediaKey(ctx); err != nil {
			return nil, err
		}
		r, err = s.kms.GenerateDataKey(ctx, req)
	}
	return r, err
}

// GenerateKMSDataKey returns a new 16-byte AES-128 data key for HLS
// encryption, in plaintext and under the media CMK (created on first use).
func (s *Service) GenerateKMSDataKey(ctx context.Context, _ *GenerateKMSDataKeyRequest) (*GenerateKMSDataKeyResponse, error) {
	r, err := s.generate(ctx, HLSKeyBytes, HLSEncryptionContext())
	if err != nil {
		return nil, err
	}
	return &GenerateKMSDataKeyResponse{KeyId: r.KeyId, CiphertextBlob: r.CiphertextBlob, Plaintext: r.Plaintext, RequestId: provider.NewRequestID()}, nil
}

// decryptFor decrypts a blob of the given purpose and checks its length.
func (s *Service) decryptFor(ctx context.Context, blobB64 string, ec wrap.EncryptionContext, n int) ([]byte, error) {
	r, err := s.kms.Decrypt(ctx, &provider.DecryptRequest{CiphertextBlob: blobB64, EncryptionContext: ec})
	if err != nil {
		return nil, err
	}
	pt, err := base64.StdEncoding.DecodeString(r.Plaintext)
	if err != nil || len(pt) != n {
		wrap.ZeroBytes(pt)
		return nil, provider.InvalidCiphertext(fmt.Errorf("vod: decrypted key is not %d bytes", n))
	}
	return pt, nil
}

// playKey returns the play-token HMAC key, loading it on first use.
func (s *Service) playKey(ctx context.Context) ([]byte, error) {
	for {
		s.keyMu.Lock()
		k := s.hmacKey
		s.keyMu.Unlock()
		if k != nil {
			return k, nil
		}
		err := s.keyLoad.do(ctx, func() error {
			s.keyMu.Lock()
			loaded := s.hmacKey != nil
			s.keyMu.Unlock()
			if loaded {
				return nil
			}
			secret, err := s.loadTokenSecret(ctx)
			if err != nil {
				return err
			}
			defer wrap.ZeroBytes(secret)
			k, err := hkdf.Key(sha256.New, secret, nil, "p11kms/vod/play-token/v1", sha256.Size)
			if err != nil {
				return provider.Internal("deriving the play-token key", err)
			}
			s.keyMu.Lock()
			s.hmacKey = k
			s.keyMu.Unlock()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
}

// loadTokenSecret decrypts the play-token secret from TokenKeyBlob or
// TokenKeyFile, creating the file if it does not exist.
func (s *Service) loadTokenSecret(ctx context.Context) ([]byte, error) {
	blob, where := s.cfg.TokenKeyBlob, "Config.TokenKeyBlob"
	if blob == "" {
		path := s.cfg.TokenKeyFile
		if path == "" {
			return nil, provider.NewError(provider.CodeUnsupportedOp, "no play-token key is configured (vod.Config TokenKeyBlob or TokenKeyFile)")
		}
		where = path
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			secret, created, cerr := s.createTokenSecret(ctx, path)
			if cerr != nil || created {
				return secret, cerr
			}
			b, err = os.ReadFile(path) // another process made it first
		}
		if err != nil {
			return nil, provider.NewError(provider.CodeInternalFailure, "reading the play-token key: %v", err)
		}
		blob = strings.TrimSpace(string(b))
	}
	secret, err := s.decryptFor(ctx, blob, TokenKeyEncryptionContext(), TokenSecretBytes)
	if err != nil {
		if provider.ErrorCode(err) == provider.CodeInvalidCiphertext {
			return nil, provider.NewError(provider.CodeInvalidCiphertext,
				"the play-token key in %s does not decrypt on this token (made on another token, or damaged)", where)
		}
		return nil, err
	}
	return secret, nil
}

// createTokenSecret makes a new play-token secret under the media CMK and
// writes its blob to path, unless path appears meanwhile (created false).
func (s *Service) createTokenSecret(ctx context.Context, path string) (secret []byte, created bool, err error) {
	r, err := s.generate(ctx, TokenSecretBytes, TokenKeyEncryptionContext())
	if err != nil {
		return nil, false, err
	}
	secret, err = base64.StdEncoding.DecodeString(r.Plaintext)
	if err != nil || len(secret) != TokenSecretBytes {
		wrap.ZeroBytes(secret)
		return nil, false, provider.Internal("generating the play-token key", fmt.Errorf("bad data key"))
	}
	ok, err := createExclusive(path, []byte(r.CiphertextBlob+"\n"))
	if err != nil || !ok {
		wrap.ZeroBytes(secret)
		if err != nil {
			return nil, false, provider.NewError(provider.CodeInternalFailure, "writing the play-token key: %v", err)
		}
		return nil, false, nil
	}
	return secret, true, nil
}

// createExclusive writes data to path (0600) if path does not exist, all or
// nothing: the content is written to a temporary file and hard-linked into
// place, so a reader never sees a partial file. ok is false if path
// already existed.
func createExclusive(path string, data []byte) (ok bool, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return false, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (it crashes the program instead)
	return b
}
