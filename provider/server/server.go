// Package server composes the KMS HTTP service: the Alibaba-, Tencent- and
// AWS-compatible front-ends on one port (routed as the SDKs' requests
// identify themselves), health and readiness, Prometheus metrics, the audit
// log, per-access-key rate limits and the request size limit. It holds no
// crypto; cmd/p11kms's `serve` adds flags, TLS, timeouts and signals.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/aliyun"
	"github.com/p11kms/p11kms/provider/awskms"
	"github.com/p11kms/p11kms/provider/tencent"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap/nitro"
)

// Config configures the service.
type Config struct {
	KMS  *provider.Service
	Keys *wire.AccessKeys
	// Audit receives one record per KMS request (nil: none).
	Audit wire.Observer
	// Rate and Burst limit each access key (requests per second); Rate 0
	// means no limit. Used only when State is nil.
	Rate  float64
	Burst int
	// State is the node's replay memory and rate limiter (state.Open with
	// ReplayWindow(ClockSkew)): in process, or shared with the other nodes
	// on Redis. Nil: in process, sized for wire.DefaultMaxRate, limited by
	// Rate and Burst.
	State *state.State
	// ClockSkew is how far a request's timestamp may be from the clock in
	// both dialects (0: each dialect's own, Alibaba 15 min, Tencent 5 min).
	ClockSkew time.Duration
	// MaxBodyBytes bounds a request: the query string plus the body
	// (default 64 KiB; the Alibaba SDKs put every parameter in the query).
	MaxBodyBytes int64
	// Metrics registers the service's metrics (nil: a new registry).
	Metrics *prometheus.Registry
	// Now is the clock for signatures (default time.Now).
	Now func() time.Time
	// Log, if set, receives one error line per InternalFailure with its
	// cause, which the client is not told.
	Log *slog.Logger
	// AWSAttestation checks the attestation documents of AWS Recipients
	// (awskms.Config.Attestation; the zero value refuses them).
	AWSAttestation nitro.Verifier
	// HLSKeys, if set, serves HLS key delivery at GET /hls/key (see
	// provider/vod): players cannot sign requests, the play token is the
	// credential.
	HLSKeys http.Handler
	// ExpectedHost, if set, is the only Host signed requests may name, on
	// both APIs (serve --expected-host; wire.HostMatches).
	ExpectedHost string
}

// Server is the composed http.Handler.
type Server struct {
	mux     *http.ServeMux
	metrics *Metrics
}

// ReplayWindow is how long the dialects remember a nonce or signature for
// the clock skew they accept (0: their own): twice the longest skew.
func ReplayWindow(clockSkew time.Duration) time.Duration {
	if clockSkew > 0 {
		return 2 * clockSkew
	}
	return 2 * max(aliyun.MaxClockSkew, tencent.TimestampWindow)
}

// New builds the service handler. It panics on a Config that State cannot
// be built from (a negative or infinite Rate; serve checks its flags first).
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := NewMetrics(reg, cfg.KMS)
	obs := multiObserver{m}
	if cfg.Audit != nil {
		obs = append(obs, cfg.Audit)
	}
	if cfg.Log != nil {
		obs = append(obs, failureLog{cfg.Log})
	}
	st := cfg.State
	if st == nil {
		var err error
		if st, err = state.Open(state.Config{Window: ReplayWindow(cfg.ClockSkew), MaxRate: wire.DefaultMaxRate,
			Rate: cfg.Rate, Burst: cfg.Burst}); err != nil {
			panic("server.New: " + err.Error())
		}
	}
	var lim wire.Limiter
	if st.Limiter != nil {
		lim = st.Limiter
	}
	base := wire.Config{KMS: cfg.KMS, Keys: cfg.Keys, Observer: obs, Limiter: lim, Now: cfg.Now, MaxBodyBytes: cfg.MaxBodyBytes,
		ExpectedHost: cfg.ExpectedHost, Replay: st.Replay, ClockSkew: cfg.ClockSkew}
	ali := aliyun.NewHandler(base)
	tc := tencent.NewHandler(base)
	aws := awskms.NewHandler(awskms.Config{Config: base, Attestation: cfg.AWSAttestation})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain")
		if err := cfg.KMS.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("token not ready\n"))
			return
		}
		if err := st.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("shared state not ready\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if cfg.HLSKeys != nil {
		mux.Handle("GET /hls/key", cfg.HLSKeys)
	}
	mux.Handle("/", Route(cfg.MaxBodyBytes, ali, tc, aws))
	return &Server{mux: mux, metrics: m}
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Metrics returns the service's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Route sends each request to the API its SDK speaks (docs/WIRE.md): an
// X-Amz-Target header or an AWS4-HMAC-SHA256 Authorization → AWS; an
// X-TC-Action header or a TC3 Authorization → Tencent; a SecretId parameter
// → Tencent v1; everything else (ACS3/ACS4 Authorization, RPC signatures)
// → Alibaba. The request is wrapped once (wire.Request, bounded by
// maxBody): what the router reads or parses to decide — only a v1 form
// body needs it — the dialect does not read or parse again.
func Route(maxBody int64, alibaba, tencent, aws wire.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := wire.NewRequest(r, maxBody)
		if r.Header.Get("X-Amz-Target") != "" || strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-") {
			aws.ServeRequest(w, req)
			return
		}
		if routesToTencent(req) {
			tencent.ServeRequest(w, req)
			return
		}
		alibaba.ServeRequest(w, req)
	})
}

// routesToTencent reports whether req is a Tencent Cloud API request:
// from the headers, else from the query string, else (a form POST) from
// the form body, each parsed once for the dialect too.
func routesToTencent(req *wire.Request) bool {
	r := req.HTTP
	if r.Header.Get("X-TC-Action") != "" || strings.HasPrefix(r.Header.Get("Authorization"), "TC3-") {
		return true
	}
	if q, err := req.Query(); err == nil && q.Has("SecretId") {
		return true
	}
	if r.Method == http.MethodPost && req.IsForm() {
		f, err := req.Form()
		return err == nil && f.Has("SecretId")
	}
	return false
}

// failureLog logs the cause of every InternalFailure.
type failureLog struct{ log *slog.Logger }

func (f failureLog) Observe(r wire.Record) {
	if r.Err == nil {
		return
	}
	cause := r.Err.Error()
	var pe *provider.Error
	if errors.As(r.Err, &pe) && pe.Err != nil {
		cause += ": " + pe.Err.Error()
	}
	f.log.Error("internal failure", "api", r.API, "action", r.Action, "keyId", r.KeyId,
		"requestId", r.RequestId, "code", r.Code, "err", cause)
}

type multiObserver []wire.Observer

func (m multiObserver) Observe(r wire.Record) {
	for _, o := range m {
		o.Observe(r)
	}
}

// Healthy is false while any observer that tells its health (the audit
// log, after a failed write) reports false: the pipeline then refuses
// signed requests (wire.Health, fail closed).
func (m multiObserver) Healthy() bool {
	for _, o := range m {
		if h, ok := o.(wire.Health); ok && !h.Healthy() {
			return false
		}
	}
	return true
}
