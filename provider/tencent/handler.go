package tencent

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// APIVersion is the Tencent Cloud KMS API version this front-end speaks.
const APIVersion = "2019-01-18"

// DefaultMaxBodyBytes is the request size limit when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = wire.DefaultMaxBodyBytes

// Config configures the handler (a request over MaxBodyBytes is
// RequestSizeLimitExceeded; a refusal of the Limiter RequestLimitExceeded).
type Config = wire.Config

type handler struct {
	cfg    Config
	keys   *wire.AccessKeys  // the SecretIds (auth.go)
	window time.Duration     // the accepted timestamp distance
	replay *wire.ReplayCache // TC3 signatures, targets and first uses; v1 nonces
}

// New returns the Tencent Cloud KMS wire API (version 2019-01-18) in front
// of cfg.KMS. It panics if cfg.KMS or cfg.Keys is nil.
func New(cfg Config) http.Handler { return NewHandler(cfg) }

// NewHandler is New, as the router drives it (wire.Handler).
func NewHandler(cfg Config) wire.Handler {
	if cfg.KMS == nil || cfg.Keys == nil {
		panic("tencent: Config.KMS and Config.Keys are required")
	}
	return newHandler(cfg)
}

func newHandler(cfg Config) *handler {
	cfg = cfg.WithDefaults()
	h := &handler{cfg: cfg, keys: cfg.Keys, window: cfg.ClockSkew}
	if h.window <= 0 {
		h.window = TimestampWindow
	}
	// A request first seen at t carries a timestamp no earlier than
	// t−window, so it stops being acceptable by t+2·window.
	h.replay = cfg.ReplayCache(2 * h.window)
	return h
}

// ServeHTTP answers every request with HTTP 200 and Tencent's envelope
// {"Response":{...,"RequestId"}} (errors as {"Response":{"Error":{"Code","Message"},"RequestId"}}),
// because the SDK reads nothing else.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeRequest(w, wire.NewRequest(r, h.cfg.MaxBodyBytes))
}

// ServeRequest serves one request the router has wrapped, through the
// pipeline's frame (wire.Serve).
func (h *handler) ServeRequest(w http.ResponseWriter, req *wire.Request) {
	wire.Serve(w, req, h, h.cfg.Pipeline())
}

// NewRecord starts a request's record, with its one RequestId.
func (h *handler) NewRecord(req *wire.Request) wire.Record {
	return wire.Record{Time: h.cfg.Now(), RequestId: provider.NewRequestID(), SourceAddr: req.HTTP.RemoteAddr,
		API: "tencent", HTTPStatus: http.StatusOK}
}

// object is a response's fields by their wire names: the SDK reads the
// envelope's Response by name, so the actions answer objects, not types.
type object = map[string]any

// Write answers with HTTP 200 and the response, or err, in Tencent's
// envelope {"Response":{...,"RequestId"}}.
func (h *handler) Write(w http.ResponseWriter, _ *wire.Request, rec *wire.Record, resp any, err error) {
	body, ok := resp.(object)
	if err == nil && !ok {
		err = provider.Internal("encoding the response", nil)
	}
	if err != nil {
		code, msg := codeAndMessage(err)
		rec.Code = code
		if code == CodeInternalError {
			rec.Err = err
		}
		body = object{"Error": object{"Code": code, "Message": msg}}
	}
	body["RequestId"] = rec.RequestId
	out, _ := json.Marshal(object{"Response": body})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-TC-RequestId", rec.RequestId)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// readBody reads the body once (wire.ReadBody) with Tencent's refusals.
func readBody(req *wire.Request) ([]byte, error) {
	return wire.ReadBody(req, func(tooLarge bool) error {
		if tooLarge {
			return errorf(CodeRequestSizeExceeded, "the request is larger than %d bytes", req.Max)
		}
		return errorf(CodeInvalidParameter, "the request body could not be read")
	})
}

// Verify is the Tencent verifier (wire.Dialect): the body read once, then
// the TC3 or v1 signature, timestamp and replay look-up (auth.go).
func (h *handler) Verify(req *wire.Request, rec *wire.Record) (*wire.Auth, error) {
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	p, err := h.authenticateRequest(req, body, rec.Time)
	rec.AccessKeyId = provider.Clip(p.secretID, 64)
	if err != nil {
		return nil, err
	}
	// TC3 signs the host header, v1 the host in its string to sign.
	return &wire.Auth{AccessKey: p.key, Action: p.action, Replay: p.replay, Dialect: p, Host: req.HTTP.Host}, nil
}

// Lookup finds the action in the Tencent table; the other actions of the
// API are UnsupportedOperation, anything else InvalidAction.
func (h *handler) Lookup(a *wire.Auth) (*wire.Action, bool, error) {
	p := a.Dialect.(*request)
	act, served := actions[p.action]
	known := served || knownActions[p.action]
	switch {
	case p.version != APIVersion:
		return nil, known, errorf(CodeNoSuchVersion, "the API version %q does not exist: this is %s", provider.Clip(p.version, 32), APIVersion)
	case served:
		return act, true, nil
	case known:
		return nil, true, errorf(CodeUnsupportedOperation, "%s is not supported by p11kms", p.action)
	}
	return nil, false, errorf(CodeInvalidAction, "the action %s does not exist", provider.Clip(p.action, 64))
}

// Decode fills the action's Tencent request from the JSON body or the
// flattened parameters, strictly, and validates it (its check method).
func (h *handler) Decode(a *wire.Auth, act *wire.Action) (any, error) {
	p := a.Dialect.(*request)
	req := act.New()
	var err error
	if p.isJSON {
		err = decodeJSON(p.json, req)
	} else {
		err = decodeFlat(p.flat, req)
	}
	if err == nil {
		err = wire.CheckRequired(req)
	}
	if err != nil {
		return nil, err
	}
	if c, ok := req.(checker); ok {
		err = c.check()
	}
	return req, err
}

// checker is a request that validates itself after decoding.
type checker interface{ check() error }

// Refuse is the Tencent code of the pipeline's own refusals (a may be nil:
// the replay memory refuses while verifying).
func (h *handler) Refuse(kind wire.Refusal, a *wire.Auth) error {
	switch kind {
	case wire.AuditUnavailable:
		return errorf(CodeServiceUnavailable, "the audit log cannot be written: requests are refused until it can be; retry later")
	case wire.StateUnavailable:
		return errorf(CodeServiceUnavailable, "the server's shared replay and rate state is unavailable: retry later")
	case wire.Replayed:
		return errorf(CodeSignatureExpire, "the Nonce was already used with this SecretId: the request is a replay")
	case wire.WrongHost:
		return errorf(CodeSignatureFailure, "%s", a.HostRefusal())
	case wire.Repeated:
		return errorf(CodeSignatureFailure, "this signature already performed this action: a TC3 signature changes state "+
			"at most once (X-TC-Action is not signed); sign the request again")
	case wire.Retargeted:
		return errorf(CodeSignatureFailure, "this signature was already used for another action, region or version")
	}
	return errorf(CodeRequestLimitExceeded, "too many requests for this SecretId (its rate or its share of the replay memory): retry later")
}

// refuse is Refuse for the replay memory's checks.
func (h *handler) refuse(kind wire.Refusal) error { return h.Refuse(kind, nil) }
