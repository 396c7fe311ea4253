package aliyun

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// DefaultMaxBodyBytes is the request size limit when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = wire.DefaultMaxBodyBytes

// Config configures the handler (a request over MaxBodyBytes is HTTP 413
// InvalidParameter; a refusal of the Limiter HTTP 429 Rejected.Throttling).
type Config = wire.Config

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
	cfg = cfg.WithDefaults()
	skew := cfg.ClockSkew
	if skew <= 0 {
		skew = MaxClockSkew
	}
	return &handler{cfg: cfg, v: verifier{keys: cfg.Keys, skew: skew}, nonces: cfg.ReplayCache(2 * skew)}
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
	wire.Serve(w, req, h, h.cfg.Pipeline())
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
	return wire.ReadBody(req, func(tooLarge bool) error {
		if tooLarge {
			return apiError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "the request (query string and body) exceeds %d bytes", req.Max)
		}
		return provider.InvalidParam("body", "the request body could not be read")
	})
}

// claimNonce is the Alibaba replay rule: an access key's nonce is used
// once within the window; an access key over its share of the memory is
// throttled, an unreachable shared memory refuses (fail closed).
func (h *handler) claimNonce(ctx context.Context, a *authResult) *wire.ReplayClaim {
	return wire.NewReplayClaim(func() error {
		return h.nonces.Claim(ctx, a.AccessKey.AccessKeyId, "acs\n"+a.Nonce, h.refuse)
	})
}

// Verify is the Alibaba verifier (wire.Dialect): method and path, the
// body read once, the parameters parsed once, then the ACS3/ACS4/RPC
// signature and timestamp. The nonce is claimed later (Auth.Replay).
func (h *handler) Verify(req *wire.Request, rec *wire.Record) (*wire.Auth, error) {
	now := h.cfg.Now()
	a, err := h.authenticate(req, rec, now)
	if err != nil {
		return nil, err
	}
	// ACS3/ACS4 sign the host header; an RPC signature covers no host.
	return &wire.Auth{AccessKey: a.AccessKey, Action: a.Action, Replay: h.claimNonce(req.HTTP.Context(), a), Params: a.Params,
		Host: req.HTTP.Host, HostUnsigned: a.Scheme == SchemeRPC}, nil
}

// authenticate is Verify up to the signature's result (the capture tests
// check its scheme and nonce).
func (h *handler) authenticate(req *wire.Request, rec *wire.Record, now time.Time) (*authResult, error) {
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
	return h.v.verify(r, rr, body, now)
}

// Lookup finds the action in the core's table (wire.Actions).
func (h *handler) Lookup(a *wire.Auth) (*wire.Action, bool, error) {
	spec, ok := actionSpecs[a.Action]
	if !ok {
		return nil, false, apiError(http.StatusNotFound, CodeActionNotFound, "the action %s is not a KMS action p11kms serves", quoteName(a.Action))
	}
	return &spec.action, true, nil
}

// Decode fills the action's core request from the signed parameters.
func (h *handler) Decode(a *wire.Auth, act *wire.Action) (any, error) {
	return decodeParams(actionSpecs[act.Name], a.Params.(map[string]string))
}

// Refuse is the Alibaba code of the pipeline's own refusals.
func (h *handler) Refuse(kind wire.Refusal, a *wire.Auth) error {
	switch kind {
	case wire.WrongHost:
		return mismatch("%s", a.HostRefusal())
	case wire.AuditUnavailable:
		return apiError(http.StatusServiceUnavailable, CodeServiceUnavailable, "the audit log cannot be written: requests are refused until it can be; retry later")
	case wire.StateUnavailable:
		return apiError(http.StatusServiceUnavailable, CodeServiceUnavailable, "the server's shared replay and rate state is unavailable; retry later")
	case wire.Replayed:
		return apiError(http.StatusBadRequest, CodeNonceUsed, "the signature nonce has been used already")
	}
	return apiError(http.StatusTooManyRequests, CodeThrottling, "the access key is over its request rate limit or its share of the replay memory; retry later")
}

// refuse is Refuse for the replay memory's checks.
func (h *handler) refuse(kind wire.Refusal) error { return h.Refuse(kind, nil) }
