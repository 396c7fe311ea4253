package aliyun

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// DefaultMaxBodyBytes is the request size limit when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 64 << 10

// Config configures the handler.
type Config struct {
	// KMS runs the operations (required).
	KMS *provider.Service
	// Keys are the access keys whose signatures are accepted, with their
	// policies (required).
	Keys *wire.AccessKeys
	// Observer receives one Record per request (nil: none).
	Observer wire.Observer
	// Limiter, if set, is asked once per authenticated request; a refusal
	// is HTTP 429 Rejected.Throttling.
	Limiter wire.Limiter
	// Now is the clock the request timestamps are checked against and the
	// records are stamped with (default time.Now).
	Now func() time.Time
	// MaxBodyBytes bounds a request: its query string and body together,
	// since the Alibaba SDKs put every parameter in the query (default
	// DefaultMaxBodyBytes). A larger request is HTTP 413 InvalidParameter.
	MaxBodyBytes int64
	// Replay remembers the nonces, for twice MaxClockSkew (nil: an
	// in-process memory of the handler's own, wire.NewLocalReplayCache).
	Replay state.ReplayStore
	// MaxClockSkew is how far a request's timestamp may be from the clock
	// (0: MaxClockSkew, 15 minutes).
	MaxClockSkew time.Duration
}

type handler struct {
	cfg    Config
	v      verifier
	nonces *wire.ReplayCache
}

// New returns the Alibaba Cloud KMS API handler. It serves POST and GET on
// "/". It panics if cfg.KMS or cfg.Keys is nil.
func New(cfg Config) http.Handler { return NewHandler(cfg) }

// NewHandler is New, as the router drives it (wire.Handler).
func NewHandler(cfg Config) wire.Handler {
	if cfg.KMS == nil || cfg.Keys == nil {
		panic("aliyun.New: Config.KMS and Config.Keys are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = MaxClockSkew
	}
	h := &handler{cfg: cfg, v: verifier{keys: cfg.Keys, skew: cfg.MaxClockSkew}}
	if cfg.Replay != nil {
		h.nonces = wire.NewReplayCache(cfg.Replay, 2*cfg.MaxClockSkew)
	} else {
		h.nonces = wire.NewLocalReplayCache(2 * cfg.MaxClockSkew)
	}
	return h
}

// errorBody is what the SDKs parse from an HTTP 4xx/5xx answer.
type errorBody struct {
	RequestId string
	HostId    string
	Code      string
	Message   string
}

func newRequestID() string { return strings.ToUpper(provider.NewRequestID()) }

// ServeHTTP serves one request (the handler on its own, without the router).
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeRequest(w, wire.NewRequest(r, h.cfg.MaxBodyBytes))
}

// ServeRequest serves one request the router has wrapped, through the
// pipeline's frame (wire.Serve).
func (h *handler) ServeRequest(w http.ResponseWriter, req *wire.Request) {
	wire.Serve(w, req, h, h.cfg.Observer)
}

// NewRecord starts a request's record, with its one RequestId (upper case,
// as Alibaba's).
func (h *handler) NewRecord(req *wire.Request) wire.Record {
	return wire.Record{Time: h.cfg.Now().UTC(), RequestId: newRequestID(), SourceAddr: req.HTTP.RemoteAddr, API: "aliyun"}
}

// Write answers with the response as JSON, or with err as Alibaba's
// error body and HTTP status.
func (h *handler) Write(w http.ResponseWriter, req *wire.Request, rec *wire.Record, resp any, err error) {
	if err == nil {
		var b []byte
		if b, err = json.Marshal(resp); err == nil {
			rec.HTTPStatus = http.StatusOK
			writeJSON(w, http.StatusOK, rec.RequestId, b)
			return
		}
		err = provider.Internal("encoding the response", err)
	}
	e := provider.AsError(err)
	status := e.HTTPStatus
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	if e.Code == CodeUnsupportedMethod {
		w.Header().Set("Allow", "GET, POST")
	}
	host := provider.Clip(req.HTTP.Host, 255)
	if host == "" {
		host = "p11kms"
	}
	b, _ := json.Marshal(errorBody{RequestId: rec.RequestId, HostId: host, Code: e.Code, Message: e.Message})
	rec.Code, rec.HTTPStatus = e.Code, status
	if e.Code == provider.CodeInternalFailure {
		rec.Err = err
	}
	writeJSON(w, status, rec.RequestId, b)
}

func writeJSON(w http.ResponseWriter, status int, requestID string, b []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json;charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	hd.Set("x-acs-request-id", requestID)
	w.WriteHeader(status)
	w.Write(b)
}

// readBody reads the body once, refusing a request (query and body
// together) larger than the limit.
func (h *handler) readBody(req *wire.Request) ([]byte, error) {
	b, err := req.Body()
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return nil, apiError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
			"the request (query string and body) exceeds %d bytes", req.Max)
	case err != nil:
		return nil, provider.InvalidParam("body", "the request body could not be read")
	}
	return b, nil
}

// refusals are Alibaba's answers to the pipeline's replay and rate checks.
var refusals = wire.Refusals{
	Replayed: func() error {
		return apiError(http.StatusBadRequest, CodeNonceUsed, "the signature nonce has been used already")
	},
	Throttled: func() error {
		return apiError(http.StatusTooManyRequests, CodeThrottling, "the access key's request rate limit is exceeded; retry later")
	},
	Unavailable: func() error {
		return apiError(http.StatusServiceUnavailable, CodeServiceUnavailable,
			"the server's shared replay and rate state is unavailable; retry later")
	},
}

// claimNonce is the Alibaba replay rule: an access key's nonce is used
// once within the window; an access key over its share of the memory is
// throttled, an unreachable shared memory refuses (fail closed).
func (h *handler) claimNonce(ctx context.Context, a *authResult) *wire.ReplayClaim {
	return wire.NewReplayClaim(func() error {
		return h.nonces.Claim(ctx, a.AccessKey.AccessKeyId, "acs\n"+a.Nonce, refusals)
	})
}

// Run runs one request up to the provider's response (wire.Dialect).
func (h *handler) Run(req *wire.Request, rec *wire.Record) (resp any, err error) {
	r := req.HTTP
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, apiError(http.StatusMethodNotAllowed, CodeUnsupportedMethod, "the Alibaba Cloud KMS API takes POST or GET")
	}
	if r.URL.Path != "/" {
		return nil, apiError(http.StatusNotFound, CodeActionNotFound, "the Alibaba Cloud KMS API is served at /")
	}
	body, err := h.readBody(req)
	if err != nil {
		return nil, err
	}
	rr, err := parseRaw(req, body)
	if err != nil {
		return nil, err
	}
	rec.AccessKeyId = claimedAccessKeyId(r, rr)
	now := h.cfg.Now()
	a, err := h.v.verify(r, rr, body, now)
	if err != nil {
		return nil, err
	}
	rec.AccessKeyId = a.AccessKey.AccessKeyId
	spec, known := actionSpecs[a.Action]
	rec.SetAction(a.Action, known)
	if err := wire.Limit(r.Context(), h.cfg.Limiter, a.AccessKey.AccessKeyId, refusals); err != nil {
		return nil, err
	}
	if !known {
		return nil, apiError(http.StatusNotFound, CodeActionNotFound, "the action %s is not a KMS action p11kms serves", quoteName(a.Action))
	}
	preq, err := decodeParams(spec, a.Params)
	if err != nil {
		return nil, err
	}
	if spec.action.Touches != nil {
		if ref := spec.action.Touches(preq).Key; ref != nil {
			rec.KeyId = *ref
		}
	}
	ctx := provider.WithRequestID(r.Context(), rec.RequestId)
	if err := wire.Authorize(ctx, h.cfg.KMS, a.AccessKey, spec.action, preq); err != nil {
		return nil, err
	}
	// The nonce is remembered only now: a request refused for its
	// signature, its rate or its policy consumes no replay memory.
	if err := h.claimNonce(ctx, a).Claim(); err != nil {
		return nil, err
	}
	resp, err = spec.action.Call(ctx, h.cfg.KMS, preq)
	if err != nil {
		return nil, err
	}
	if resp == nil || reflect.ValueOf(resp).IsNil() {
		return nil, provider.Internal(a.Action, errors.New("the provider returned no response"))
	}
	if id, ver := responseKeyIds(resp); id != "" {
		rec.KeyId, rec.KeyVersionId = id, ver
	}
	return resp, nil
}

// responseKeyIds finds KeyId and KeyVersionId in a response, at the top
// level or in KeyMetadata / KeyVersion.
func responseKeyIds(resp any) (keyID, versionID string) {
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return "", ""
	}
	str := func(s reflect.Value, name string) string {
		if f := s.FieldByName(name); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
		return ""
	}
	s := v.Elem()
	keyID, versionID = str(s, "KeyId"), str(s, "KeyVersionId")
	for _, nested := range []string{"KeyMetadata", "KeyVersion"} {
		if n := s.FieldByName(nested); n.IsValid() && n.Kind() == reflect.Struct && keyID == "" {
			keyID, versionID = str(n, "KeyId"), str(n, "KeyVersionId")
		}
	}
	return keyID, versionID
}
