package wire

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/p11kms/p11kms/provider"
)

// Dialect is what one wire API supplies to the pipeline (Serve): a
// verifier, an action table and an error map with its encoder. It does
// not sequence any step; Serve does, in one order for every dialect
// (docs/ARCHITECTURE.md, "The pipeline").
type Dialect interface {
	// NewRecord starts the request's record: Time, RequestId (made here,
	// once, in the dialect's format), SourceAddr, API.
	NewRecord(req *Request) Record
	// Verify is the signature verifier: it reads the request (req.Body,
	// req.Query, req.Form: each at most once), checks the signature and
	// the timestamp, and looks the nonce or signature up in its replay
	// memory without recording it (Auth.Replay does, later). It sets
	// rec.AccessKeyId to the access key the request claims (clipped),
	// even when it fails.
	Verify(req *Request, rec *Record) (*Auth, error)
	// Lookup is the action table: the row serving a.Action; known
	// reports whether the name is one of the dialect's closed set (the
	// metric label); err is the dialect's refusal of a request it does
	// not serve (unknown or unsupported action, wrong API version).
	Lookup(a *Auth) (act *Action, known bool, err error)
	// Decode fills a new request of the row (act.New) from a.Params and
	// validates it, with errors naming the parameter as the API does.
	Decode(a *Auth, act *Action) (any, error)
	// Refuse is the error map for the pipeline's own refusals: the
	// dialect's code and message for kind.
	Refuse(kind Refusal, a *Auth) error
	// Write encodes the response, or err (a core error mapped to the
	// dialect's code and status), and sets rec's Code, HTTPStatus and
	// (for an internal failure) Err.
	Write(w http.ResponseWriter, req *Request, rec *Record, resp any, err error)
}

// Refusal is a kind of request the pipeline itself refuses.
type Refusal int

const (
	// Throttled: the access key's rate limit is exceeded, or its share of
	// the replay memory.
	Throttled Refusal = iota
	// AuditUnavailable: the audit log could not be written; requests are
	// refused until it can be (fail closed).
	AuditUnavailable
	// StateUnavailable: the shared replay and rate state (Redis) cannot be
	// reached; requests are refused until it can be (fail closed).
	StateUnavailable
	// Replayed: the nonce or signature was used already (a replay).
	Replayed
	// WrongHost: the request is signed for a host other than the expected
	// one (serve --expected-host); Auth.HostRefusal is the message.
	WrongHost
	// Repeated: a signature that already performed this write came again
	// (SignatureReuse).
	Repeated
	// Retargeted: a signature used for another target came back outside
	// the grace, or, for a write, over another connection (SignatureReuse).
	Retargeted
)

// Auth is what a dialect's verifier returns for a request whose signature
// holds.
type Auth struct {
	// AccessKey signed the request.
	AccessKey AccessKey
	// Action is the action as the request names it (not yet checked
	// against the table).
	Action string
	// Replay records the request's nonce or signature, claimed only once
	// the rate limit and the policy passed; nil when there is nothing to
	// remember.
	Replay *ReplayClaim
	// Params are the request's parameters as the verifier read them, for
	// the dialect's Decode (a map, a JSON body, ...).
	Params any
	// Dialect holds whatever else the dialect's Lookup and Decode need
	// (its API version, its body format).
	Dialect any
	// Host is the Host the signature covers (ACS3/ACS4, TC3 and SigV4 sign
	// the host header, Tencent v1 its string to sign), which the pipeline
	// compares with the expected host (Pipeline.ExpectedHost). A scheme
	// that signs no host (Alibaba RPC) sets HostUnsigned and Host to the
	// Host as received: the check then catches a misdirected client, not
	// an attacker, who may rewrite it (docs/SECURITY.md, finding 8).
	Host         string
	HostUnsigned bool

	hostRefusal string
}

// HostRefusal is the message of a WrongHost refusal: the host the request
// names and the one this server accepts.
func (a *Auth) HostRefusal() string { return a.hostRefusal }

// Health is an Observer that can tell whether it is recording (the audit
// log: false after a failed write, until a write succeeds).
type Health interface {
	Healthy() bool
}

// Pipeline is what Serve runs a request against.
type Pipeline struct {
	// KMS is the core the actions call.
	KMS *provider.Service
	// Limiter, if set, is asked once per authenticated request.
	Limiter Limiter
	// Observer receives one Record per request (nil: none). If it is a
	// Health that reports false, signed requests are refused
	// (AuditUnavailable) until it reports true again; the refused
	// request's own record is still offered to it.
	Observer Observer
	// ExpectedHost, if set, is the only host a request may be signed for
	// (HostMatches; serve --expected-host): the one host check, for every
	// dialect.
	ExpectedHost string
}

// Serve runs one request through the pipeline, the same steps in the same
// order for every dialect: record (one RequestId) → verify the signature
// (replay memory looked up) → the signed host is the expected one → action
// name recorded → audit log healthy →
// rate limit → action table → decode and validate → authorize the action
// and every key, blob and alias the request touches, each key resolved
// once (AuthorizeTouched) → replay memory claimed → the core, with the
// resolved key ids → encode → one Record to the observer. A panic in any
// step becomes InternalFailure.
func Serve(w http.ResponseWriter, req *Request, d Dialect, p Pipeline) {
	start := time.Now()
	rec := d.NewRecord(req)
	resp, err := run(d, p, req, &rec)
	d.Write(w, req, &rec, resp, err)
	rec.Latency = time.Since(start)
	if p.Observer != nil {
		p.Observer.Observe(rec)
	}
}

// run is the pipeline's steps from the verifier to the core, with
// RecoverRequest around them.
func run(d Dialect, p Pipeline, req *Request, rec *Record) (resp any, err error) {
	defer RecoverRequest(&err)
	a, err := d.Verify(req, rec)
	if err != nil {
		return nil, err
	}
	rec.AccessKeyId = a.AccessKey.AccessKeyId
	if err := checkHost(p.ExpectedHost, d, a); err != nil {
		return nil, err
	}
	act, known, lookupErr := d.Lookup(a)
	rec.SetAction(a.Action, known)
	if h, ok := p.Observer.(Health); ok && !h.Healthy() {
		return nil, d.Refuse(AuditUnavailable, a)
	}
	if err := limit(req.HTTP.Context(), p.Limiter, d, a); err != nil {
		return nil, err
	}
	if lookupErr != nil {
		return nil, lookupErr
	}
	areq, err := d.Decode(a, act)
	if err != nil {
		return nil, err
	}
	rec.Write = act.Write
	c := &Call{Ctx: provider.WithRequestID(req.HTTP.Context(), rec.RequestId), KMS: p.KMS, AccessKey: a.AccessKey, Action: act.Name,
		Write: act.Write, rec: rec}
	if err := authorize(c, act, areq); err != nil {
		return nil, err
	}
	// The replay memory is spent only now: a request refused for its
	// signature, its rate or its policy consumes none.
	if err := a.Replay.Claim(); err != nil {
		return nil, err
	}
	resp, err = act.Call(c, areq)
	if err == nil && resp == nil {
		err = provider.Internal(act.Name, errors.New("the operation returned no response"))
	}
	return resp, err
}

// checkHost is the one --expected-host check: the host the signature
// covers (Auth.Host) must be the expected one, else the dialect's WrongHost
// refusal. Nothing was claimed yet, so a refused request spends no replay
// memory.
func checkHost(expected string, d Dialect, a *Auth) error {
	if HostMatches(expected, a.Host) {
		return nil
	}
	verb := "signed for"
	if a.HostUnsigned {
		verb = "sent to"
	}
	a.hostRefusal = fmt.Sprintf("the request is %s host %s; this server accepts %s only (--expected-host)", verb, provider.Clip(a.Host, 128), expected)
	return d.Refuse(WrongHost, a)
}

// authorize checks the access key's policy for the action and everything
// the decoded request touches (Action.Touches, then Action.More), each key
// resolved once: the request then names the key ids that were checked.
// The record gets the first key as named.
func authorize(c *Call, act *Action, areq any) error {
	var touched []Touched
	if act.Touches != nil {
		touched = act.Touches(areq)
	}
	for _, t := range touched {
		if t.Key != nil && *t.Key != "" {
			c.rec.KeyId = provider.Clip(*t.Key, 128) // as named; the operation records the key it used
			break
		}
	}
	if len(touched) == 0 {
		touched = []Touched{{}} // the action alone
	}
	for _, t := range touched {
		err := authorizeTouched(c.Ctx, c.KMS, c.AccessKey, c.Action, c.Write, t)
		if act.SkipMissing && t.Key != nil && isMissing(err) {
			*t.Key = "" // left out: the operation skips it
			continue
		}
		if err != nil {
			return err
		}
	}
	if act.More == nil {
		return nil
	}
	more, err := act.More(c, areq)
	if err != nil {
		return err
	}
	for _, t := range more {
		if err := authorizeTouched(c.Ctx, c.KMS, c.AccessKey, c.Action, c.Write, t); err != nil {
			return err
		}
	}
	return nil
}

// isMissing reports whether err says a key or alias does not exist.
func isMissing(err error) bool {
	code := provider.ErrorCode(err)
	return code == provider.CodeKeyNotFound || code == provider.CodeAliasNotFound
}

// Call is one authorized request as an action's core call sees it.
type Call struct {
	// Ctx carries the request's RequestId (provider.WithRequestID).
	Ctx context.Context
	// KMS is the core.
	KMS *provider.Service
	// AccessKey signed the request.
	AccessKey AccessKey
	// Action is the row's name: what policies name.
	Action string
	// Write is the row's Action.Write.
	Write bool

	rec *Record
}

// SetKey records the key (and version) the request used; a Call made
// outside the pipeline (the CLI's) has no record and records nothing.
func (c *Call) SetKey(keyID, versionID string) {
	if c.rec == nil {
		return
	}
	c.rec.KeyId, c.rec.KeyVersionId = provider.Clip(keyID, 128), provider.Clip(versionID, 64)
}
