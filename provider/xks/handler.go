package xks

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/sigv4"
	"github.com/p11kms/p11kms/provider/wire"
)

// Service is the SigV4 signing name of XKS requests.
const Service = "kms-xks-proxy"

// Config configures the XKS handler.
type Config struct {
	Token *hsm.Token
	File  *File
	// KMS serves the external keys backed by a CMK (File.Keys[…].CMK);
	// nil refuses them (InternalException).
	KMS *provider.Service
	// Observer receives one wire.Record per request (metrics, audit).
	Observer wire.Observer
	// Limiter limits each access key (nil: no limit): ThrottlingException.
	Limiter wire.Limiter
	// Now is the clock for signatures (default time.Now).
	Now func() time.Time
	// MaxBodyBytes bounds a request body (default 64 KiB; the spec's
	// largest request is about 17 KiB of Base64 plus requestMetadata).
	MaxBodyBytes int64
	// Model is the health answer's xksProxyModel (default "p11kms").
	Model string
	// Timeout bounds the token work of one request (default 200 ms: AWS
	// gives up at 250 ms): DependencyTimeoutException past it.
	Timeout time.Duration
}

// Handler serves the XKS Proxy API; it is a wire.Dialect.
type Handler struct {
	cfg      Config
	svc      *service
	verifier *sigv4.Verifier
	replay   *wire.ReplayCache
}

// replayWindow is how long a signature is remembered: X-Amz-Date may be
// 5 minutes either side of the clock, so a signature is usable for 10.
const replayWindow = 10 * time.Minute

// New makes the handler and the health check's session test key.
func New(ctx context.Context, cfg Config) (*Handler, error) {
	if cfg.Token == nil || cfg.File == nil {
		return nil, errors.New("xks: Config.Token and Config.File are required")
	}
	if err := cfg.File.Check(); err != nil {
		return nil, fmt.Errorf("xks: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Model == "" {
		cfg.Model = "p11kms"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	probe, err := cfg.Token.GenerateAESKey(ctx, 256, hsm.SecretKeyOptions{Label: "p11kms/xks-health", Ephemeral: true,
		Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		return nil, fmt.Errorf("xks: the health check's test key: %w", err)
	}
	file := cfg.File
	v, err := sigv4.New(sigv4.Config{Service: Service, NormalizePath: true, Now: cfg.Now,
		Lookup: func(id string) (sigv4.Key, bool) {
			s, ok := file.secret(id)
			return sigv4.Key{Secret: s}, ok
		}})
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, verifier: v, replay: wire.NewReplayCache(replayWindow, 0),
		svc: &service{tok: cfg.Token, kms: cfg.KMS, file: file, model: cfg.Model, probe: probe}}, nil
}

// ServeHTTP serves one request through the pipeline.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeRequest(w, wire.NewRequest(r, h.cfg.MaxBodyBytes))
}

// ServeRequest serves a request already wrapped by a router.
func (h *Handler) ServeRequest(w http.ResponseWriter, req *wire.Request) {
	wire.Serve(w, req, h, h.cfg.Observer)
}

// NewRecord starts the request's record with its RequestId.
func (h *Handler) NewRecord(req *wire.Request) wire.Record {
	return wire.Record{Time: h.cfg.Now(), RequestId: provider.NewRequestID(), SourceAddr: req.HTTP.RemoteAddr,
		API: "xks", HTTPStatus: http.StatusOK}
}

// Run checks the method and path, authenticates, limits, decodes,
// authorizes and calls the token.
func (h *Handler) Run(req *wire.Request, rec *wire.Record) (any, error) {
	r := req.HTTP
	if r.Method != http.MethodPost {
		return nil, fail(MethodNotAllowed, "the XKS API accepts POST only")
	}
	rt, err := parsePath(r.URL.Path, h.cfg.File.URIPrefix)
	if err != nil {
		return nil, err
	}
	raw, err := req.Body()
	if errors.Is(err, wire.ErrTooLarge) {
		return nil, fail(UnsupportedOperationException, "the request body exceeds %d bytes", h.cfg.MaxBodyBytes)
	}
	if err != nil {
		return nil, fail(ValidationException, "the request body could not be read")
	}
	claim, err := h.authenticate(r, raw, rec)
	if err != nil {
		return nil, err
	}
	rec.SetAction(rt.op, true)
	rec.KeyId = rt.keyID
	b, err := decodeBody(raw, rt.op)
	if err != nil {
		return nil, err
	}
	rec.Metadata = b.RequestMetadata.record()
	ctx, cancel := context.WithTimeout(provider.WithRequestID(r.Context(), rec.RequestId), h.cfg.Timeout)
	defer cancel()
	if rt.op == OpGetHealthStatus { // excluded from secondary authorization (the spec)
		if err := claim.Claim(); err != nil {
			return nil, err
		}
		return h.svc.health(ctx), nil
	}
	k, err := h.authorize(ctx, rt, b.RequestMetadata)
	if err != nil {
		return nil, err
	}
	if err := claim.Claim(); err != nil {
		return nil, err
	}
	return h.call(ctx, rt.op, k, b)
}

// authenticate verifies the SigV4 signature and the rate limit, and
// returns the replay claim for the signature.
func (h *Handler) authenticate(r *http.Request, raw []byte, rec *wire.Record) (*wire.ReplayClaim, error) {
	a, err := h.verifier.Verify(r, raw)
	if err != nil {
		var se *sigv4.Error
		msg := "the request's SigV4 signature did not verify"
		if errors.As(err, &se) {
			msg += " (" + se.Part + ")"
		}
		return nil, fail(AuthenticationFailedException, "%s", msg)
	}
	rec.AccessKeyId = a.AccessKeyID
	sig := hex.EncodeToString(a.Signature)
	now := h.cfg.Now()
	if seen, _ := h.replay.Peek(sig, now); seen {
		return nil, fail(AuthenticationFailedException, "this signed request was already received")
	}
	if h.cfg.Limiter != nil && !h.cfg.Limiter.Allow(a.AccessKeyID) {
		return nil, fail(ThrottlingException, "too many requests for access key %s", a.AccessKeyID)
	}
	return wire.NewReplayClaim(func() error {
		if seen, _ := h.replay.Seen(sig, now, ""); seen {
			return fail(AuthenticationFailedException, "this signed request was already received")
		}
		return nil
	}), nil
}

// authorize finds the configured key and applies its policy to the
// request's principal and KMS operation, then finds it in the token.
func (h *Handler) authorize(ctx context.Context, rt route, m *Metadata) (*externalKey, error) {
	cfg, err := h.svc.configured(rt.keyID)
	if err != nil {
		return nil, err
	}
	if !cfg.allows(m.AWSPrincipalArn, m.KMSOperation) {
		return nil, fail(AccessDeniedException, "the policy of external key %s does not allow this awsPrincipalArn "+
			"(principals) or kmsOperation (operations)", rt.keyID)
	}
	return h.svc.find(ctx, rt.keyID, cfg)
}

// call runs the operation.
func (h *Handler) call(ctx context.Context, op string, k *externalKey, b *body) (any, error) {
	switch op {
	case OpGetKeyMetadata:
		return h.svc.metadata(k), nil
	case OpEncrypt:
		in, err := b.encryptInput()
		if err != nil {
			return nil, err
		}
		return h.svc.encrypt(ctx, k, in)
	default:
		in, err := b.decryptInput()
		if err != nil {
			return nil, err
		}
		return h.svc.decrypt(ctx, k, in)
	}
}

// record is the requestMetadata as audited.
func (m *Metadata) record() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{"awsPrincipalArn": m.AWSPrincipalArn, "awsSourceVpc": m.AWSSourceVpc,
		"awsSourceVpce": m.AWSSourceVpce, "kmsKeyArn": m.KMSKeyArn, "kmsOperation": m.KMSOperation,
		"kmsRequestId": m.KMSRequestID, "kmsViaService": m.KMSViaService} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// Write answers with the response or {"errorName","errorMessage"} and the
// spec's status.
func (h *Handler) Write(w http.ResponseWriter, _ *wire.Request, rec *wire.Record, resp any, err error) {
	status := http.StatusOK
	var out []byte
	if err != nil {
		e := asError(err)
		status = e.Status()
		rec.Code = e.Name
		if e.Name == InternalException || e.Name == DependencyTimeoutException {
			rec.Err = err
		}
		if e.Name == MethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		out, _ = json.Marshal(errorBody{ErrorName: e.Name, ErrorMessage: e.message()})
	} else {
		out, _ = json.Marshal(resp)
	}
	rec.HTTPStatus = status
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

type errorBody struct {
	ErrorName    string `json:"errorName"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}
