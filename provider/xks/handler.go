package xks

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/state"
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
	// Limiter limits each credential (nil: no limit): ThrottlingException.
	// serve passes the node's state.State.Limiter, so --rate is one limit
	// per credential across every node sharing --state.
	Limiter wire.Limiter
	// Replay is the node's replay memory (state.State.Replay: in process,
	// bounded and sized from --max-rate, or shared on Redis), remembering
	// for at least ReplayWindow; nil: an in-process memory of the
	// handler's own (wire.NewLocalReplayCache).
	Replay state.ReplayStore
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
	// ExpectedHost, if set, is the only host a request may be signed for
	// (SigV4 signs the host header; serve --expected-host):
	// AuthenticationFailedException otherwise (the pipeline's check).
	ExpectedHost string
}

// Handler serves the XKS Proxy API; it is a wire.Dialect.
type Handler struct {
	cfg      Config
	svc      *service
	verifier *sigv4.Verifier
	replay   *wire.ReplayCache
	actions  map[string]*wire.Action
}

// ReplayWindow is how long a signature is remembered: X-Amz-Date may be
// 5 minutes either side of the clock, so a signature is usable for 10. A
// Config.Replay store must remember at least this long.
const ReplayWindow = 10 * time.Minute

// New makes the handler and the health check's session test key.
func New(ctx context.Context, cfg Config) (*Handler, error) {
	if cfg.Token == nil || cfg.File == nil {
		return nil, errors.New("xks: Config.Token and Config.File are required")
	}
	if err := cfg.File.checkOpen(); err != nil {
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
	svc := &service{tok: cfg.Token, kms: cfg.KMS, model: cfg.Model, probe: probe}
	svc.file.Store(cfg.File)
	v, err := sigv4.New(sigv4.Config{Service: Service, NormalizePath: true, Now: cfg.Now,
		Lookup: func(id string) (sigv4.Key, bool) {
			s, ok := svc.file.Load().secret(id)
			return sigv4.Key{Secret: s}, ok
		}})
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, verifier: v, replay: wire.Config{Replay: cfg.Replay}.ReplayCache(ReplayWindow), svc: svc}
	h.actions = h.newActions()
	return h, nil
}

// Reload replaces the configuration — credentials, keys, prefix — for
// the requests that start from now on, without dropping a connection (the
// spec's credentials rotation: add the new credential, update AWS KMS,
// remove the old one). A configuration that does not Check is refused and
// the current one stays.
func (h *Handler) Reload(f *File) error {
	if err := f.checkOpen(); err != nil {
		return fmt.Errorf("xks: %w", err)
	}
	h.svc.file.Store(f)
	return nil
}

// ServeHTTP serves one request through the pipeline.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeRequest(w, wire.NewRequest(r, h.cfg.MaxBodyBytes))
}

// ServeRequest serves a request already wrapped by a router.
func (h *Handler) ServeRequest(w http.ResponseWriter, req *wire.Request) {
	wire.Serve(w, req, h, wire.Pipeline{KMS: h.cfg.KMS, Limiter: h.cfg.Limiter, Observer: h.cfg.Observer, ExpectedHost: h.cfg.ExpectedHost})
}

// NewRecord starts the request's record with its RequestId.
func (h *Handler) NewRecord(req *wire.Request) wire.Record {
	return wire.Record{Time: h.cfg.Now(), RequestId: provider.NewRequestID(), SourceAddr: req.HTTP.RemoteAddr,
		API: "xks", HTTPStatus: http.StatusOK}
}

// params is what Verify read for Decode.
type params struct {
	rt   route
	body *body // nil if the body is not JSON (Decode says why)
	raw  []byte
}

// xksPolicy is every XKS credential's access-key policy: the pipeline's
// check of the action passes; what a request may do is the external key's
// policy (secondary authorization, Action.More).
var xksPolicy = wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}

// Verify checks the method and the path, reads the body, verifies the
// SigV4 signature and looks it up in the replay memory; once the signature
// holds, the record gets the key id and the requestMetadata.
func (h *Handler) Verify(req *wire.Request, rec *wire.Record) (*wire.Auth, error) {
	r := req.HTTP
	if r.Method != http.MethodPost {
		return nil, fail(MethodNotAllowed, "the XKS API accepts POST only")
	}
	rt, err := parsePath(r.URL.Path, h.svc.file.Load().URIPrefix)
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
	ctx, sig := r.Context(), "xks\n"+hex.EncodeToString(a.Signature)
	if seen, err := h.replay.Peek(ctx, a.AccessKeyID, sig, h.refuse); err != nil || seen {
		return nil, cmp.Or(err, h.refuse(wire.Replayed))
	}
	rec.KeyId = rt.keyID
	p := &params{rt: rt, raw: raw}
	if b, err := parseBody(raw); err == nil {
		p.body = b
		if b.RequestMetadata != nil {
			rec.Metadata = b.RequestMetadata.record()
		}
	}
	claim := wire.NewReplayClaim(func() error { return h.replay.Claim(ctx, a.AccessKeyID, sig, h.refuse) })
	return &wire.Auth{AccessKey: wire.AccessKey{AccessKeyId: a.AccessKeyID, Policy: xksPolicy}, Action: rt.op,
		Replay: claim, Params: p, Host: r.Host}, nil // host is a required signed header
}

// Lookup is the table of the four operations.
func (h *Handler) Lookup(a *wire.Auth) (*wire.Action, bool, error) {
	act, ok := h.actions[a.Action]
	if !ok {
		return nil, false, internal("routing", errors.New("no action "+a.Action))
	}
	return act, true, nil
}

// request is a decoded XKS request: the route and the checked body.
type request struct {
	rt   route
	body *body
	key  *externalKey // found by the secondary authorization (More)
	// deadline bounds the token work of the request, from its first token
	// call (Config.Timeout).
	deadline time.Time
}

// Decode checks the body: JSON, requestMetadata for the operation.
func (h *Handler) Decode(a *wire.Auth, _ *wire.Action) (any, error) {
	p := a.Params.(*params)
	if p.body == nil { // Verify could not parse it: say why
		_, err := parseBody(p.raw)
		return nil, err
	}
	if err := p.body.checkMetadata(p.rt.op); err != nil {
		return nil, err
	}
	return &request{rt: p.rt, body: p.body}, nil
}

// Refuse is the spec's answer to the pipeline's own refusals.
func (h *Handler) Refuse(kind wire.Refusal, a *wire.Auth) error {
	switch {
	case kind == wire.Replayed:
		return fail(AuthenticationFailedException, "this signed request was already received")
	case kind == wire.WrongHost:
		return fail(AuthenticationFailedException, "%s", a.HostRefusal())
	case kind == wire.Throttled && a == nil:
		return fail(ThrottlingException, "the access key is over its share of the replay memory")
	case kind == wire.Throttled:
		return fail(ThrottlingException, "too many requests for access key %s", a.AccessKey.AccessKeyId)
	case kind == wire.StateUnavailable:
		return &Error{Name: InternalException, Message: "the replay memory is unavailable: retry later",
			Cause: errors.New("replay memory unavailable")}
	}
	return &Error{Name: InternalException, Message: "the audit log cannot be written: requests are refused until it can",
		Cause: errors.New("audit log unavailable")}
}

// refuse is Refuse for the replay memory's checks.
func (h *Handler) refuse(kind wire.Refusal) error { return h.Refuse(kind, nil) }

// newActions is the action table: health has no key and no secondary
// authorization (the spec); the key operations find their key and check
// its policy in More, before the replay memory is claimed.
func (h *Handler) newActions() map[string]*wire.Action {
	keyOp := func(name string, call func(ctx context.Context, r *request) (any, error)) *wire.Action {
		return &wire.Action{Name: name, New: func() any { return new(request) },
			More: func(c *wire.Call, req any) ([]wire.Touched, error) {
				r := req.(*request)
				r.deadline = time.Now().Add(h.cfg.Timeout)
				ctx, cancel := context.WithDeadline(c.Ctx, r.deadline)
				defer cancel()
				k, err := h.authorize(ctx, r.rt, r.body.RequestMetadata)
				r.key = k
				return nil, err
			},
			Call: func(c *wire.Call, req any) (any, error) {
				r := req.(*request)
				ctx, cancel := context.WithDeadline(c.Ctx, r.deadline)
				defer cancel()
				return call(ctx, r)
			}}
	}
	return map[string]*wire.Action{
		OpGetHealthStatus: {Name: OpGetHealthStatus, New: func() any { return new(request) },
			Call: func(c *wire.Call, _ any) (any, error) {
				ctx, cancel := context.WithTimeout(c.Ctx, h.cfg.Timeout)
				defer cancel()
				return h.svc.health(ctx), nil
			}},
		OpGetKeyMetadata: keyOp(OpGetKeyMetadata, func(_ context.Context, r *request) (any, error) {
			return h.svc.metadata(r.key), nil
		}),
		OpEncrypt: keyOp(OpEncrypt, func(ctx context.Context, r *request) (any, error) {
			in, err := r.body.encryptInput()
			if err != nil {
				return nil, err
			}
			return h.svc.encrypt(ctx, r.key, in)
		}),
		OpDecrypt: keyOp(OpDecrypt, func(ctx context.Context, r *request) (any, error) {
			in, err := r.body.decryptInput()
			if err != nil {
				return nil, err
			}
			return h.svc.decrypt(ctx, r.key, in)
		}),
	}
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
