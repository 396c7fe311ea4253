package awskms

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap/nitro"
)

// ContentType is the JSON protocol's media type, of requests and answers.
const ContentType = "application/x-amz-json-1.1"

// TargetPrefix is the X-Amz-Target prefix of every KMS operation.
const TargetPrefix = "TrentService."

// API is the dialect's name in records, metrics and the audit log.
const API = "aws"

// Config configures the handler: the dialects' shared configuration
// (wire.Config: the core, the access keys, observer, limiter, clock, body
// limit) and how a Recipient's attestation document is checked.
type Config struct {
	wire.Config
	// Attestation checks the attestation document of a Recipient
	// (GenerateDataKey, Decrypt, GenerateRandom): its Roots are the
	// operator's; the zero value refuses every Recipient.
	Attestation nitro.Verifier
}

type handler struct {
	cfg        Config
	auth       *verifier
	refs       refs
	signatures *wire.ReplayCache
}

// New returns the AWS KMS API handler (POST /). It panics if cfg.KMS or
// cfg.Keys is nil.
func New(cfg Config) http.Handler { return NewHandler(cfg) }

// NewHandler is New, as the router drives it (wire.Handler).
func NewHandler(cfg Config) wire.Handler {
	if cfg.KMS == nil || cfg.Keys == nil {
		panic("awskms: Config.KMS and Config.Keys are required")
	}
	cfg.Config = cfg.WithDefaults()
	skew := cmp.Or(cfg.ClockSkew, defaultSkew)
	return &handler{cfg: cfg, auth: newVerifier(cfg.Keys, cfg.Now, skew), refs: refs{region: cfg.KMS.Region(), account: cfg.KMS.Account(), attest: cfg.Attestation},
		signatures: cfg.ReplayCache(replayWindow(skew))}
}

// ServeHTTP serves one request (the handler on its own, without the router).
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeRequest(w, wire.NewRequest(r, h.cfg.MaxBodyBytes))
}

// ServeRequest serves one request the router has wrapped, through the
// pipeline (wire.Serve).
func (h *handler) ServeRequest(w http.ResponseWriter, req *wire.Request) {
	wire.Serve(w, req, h, h.cfg.Pipeline())
}

// NewRecord starts a request's record, with its one RequestId.
func (h *handler) NewRecord(req *wire.Request) wire.Record {
	return wire.Record{Time: h.cfg.Now().UTC(), RequestId: provider.NewRequestID(), SourceAddr: req.HTTP.RemoteAddr, API: API}
}

// Write answers with the response as JSON, or err as AWS's error shape:
// {"__type","message"} with X-Amzn-ErrorType and the error's status.
func (h *handler) Write(w http.ResponseWriter, _ *wire.Request, rec *wire.Record, resp any, err error) {
	if err == nil {
		b, merr := json.Marshal(resp)
		if merr == nil {
			rec.HTTPStatus = http.StatusOK
			writeJSON(w, http.StatusOK, rec.RequestId, b)
			return
		}
		err = provider.Internal("encoding the response", merr)
	}
	code, status, msg := codeOf(err)
	rec.Code, rec.HTTPStatus = code, status
	if code == CodeInternal {
		rec.Err = err
	}
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, msg})
	w.Header().Set("X-Amzn-ErrorType", code)
	writeJSON(w, status, rec.RequestId, b)
}

func writeJSON(w http.ResponseWriter, status int, requestID string, b []byte) {
	hd := w.Header()
	hd.Set("Content-Type", ContentType)
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	hd.Set("X-Amzn-RequestId", requestID)
	w.WriteHeader(status)
	w.Write(b)
}

// readBody reads the body once, refusing one larger than the limit.
func readBody(req *wire.Request) ([]byte, error) {
	return wire.ReadBody(req, func(tooLarge bool) error {
		if tooLarge {
			return errorf(CodeRequestTooLarge, "the request exceeds %d bytes", req.Max)
		}
		return errorf(CodeSerialization, "the request body could not be read")
	})
}

// request is what Verify hands Lookup and Decode.
type request struct {
	body        []byte
	contentType string
	target      string
}

// Verify is the AWS verifier (wire.Dialect): POST /, the body read once,
// the SigV4 signature (auth.go) and the replay memory looked up.
func (h *handler) Verify(req *wire.Request, rec *wire.Record) (*wire.Auth, error) {
	r := req.HTTP
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return nil, errorf(CodeUnknownOperation, "the AWS KMS API is POST / (got %s %s)", r.Method, provider.Clip(r.URL.Path, 64))
	}
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	rec.AccessKeyId = claimedAccessKeyID(r)
	a, err := h.auth.verify(r, body)
	if err != nil {
		return nil, err
	}
	replay, err := h.replay(req.HTTP.Context(), a)
	if err != nil {
		return nil, err
	}
	target := r.Header.Get("X-Amz-Target")
	name, _ := strings.CutPrefix(target, TargetPrefix)
	// host is a required signed header: the signature binds the Host.
	return &wire.Auth{AccessKey: a.key, Action: name, Replay: replay, Host: r.Host,
		Dialect: &request{body: body, contentType: r.Header.Get("Content-Type"), target: target}}, nil
}

// Lookup finds the operation in the table; anything else is
// UnknownOperationException.
func (h *handler) Lookup(a *wire.Auth) (*wire.Action, bool, error) {
	p := a.Dialect.(*request)
	if o, ok := ops[a.Action]; ok && strings.HasPrefix(p.target, TargetPrefix) {
		return &o.action, true, nil
	}
	return nil, false, errorf(CodeUnknownOperation, "X-Amz-Target %q is not a KMS operation p11kms serves: accepted TrentService.<Operation> for %s",
		provider.Clip(p.target, 64), opNames())
}

// Decode reads the JSON body into the operation's request, strictly, and
// checks it (prepare), translating AWS key references to the core's.
func (h *handler) Decode(a *wire.Auth, act *wire.Action) (any, error) {
	p := a.Dialect.(*request)
	if !strings.HasPrefix(p.contentType, ContentType) {
		return nil, errorf(CodeSerialization, "Content-Type %q: accepted %s", provider.Clip(p.contentType, 64), ContentType)
	}
	return ops[act.Name].prepare(p.body, h.refs)
}

// Refuse is AWS's answer to the pipeline's own refusals.
func (h *handler) Refuse(kind wire.Refusal, a *wire.Auth) error {
	switch kind {
	case wire.AuditUnavailable:
		return errorf(CodeDependencyTimeout, "the audit log cannot be written: requests are refused until it can be; retry later")
	case wire.StateUnavailable:
		return errorf(CodeDependencyTimeout, "the server's shared replay and rate state is unavailable; retry later")
	case wire.Replayed:
		return errReplayed
	case wire.WrongHost:
		return errorf(CodeInvalidSignature, "%s", a.HostRefusal())
	}
	if a == nil {
		return errorf(CodeThrottling, "Rate exceeded: the access key is over its share of the replay memory; retry later")
	}
	return errorf(CodeThrottling, "Rate exceeded for access key %s; retry later", a.AccessKey.AccessKeyId)
}

// refuse is Refuse for the replay memory's checks.
func (h *handler) refuse(kind wire.Refusal) error { return h.Refuse(kind, nil) }
