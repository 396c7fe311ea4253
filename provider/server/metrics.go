package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// Metrics are the service's Prometheus metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer, kms *provider.Service) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "p11kms_requests_total", Help: "KMS requests by API, action and result code.",
		}, []string{"api", "action", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "p11kms_request_duration_seconds", Help: "KMS request latency.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"api", "action"}),
	}
	reg.MustRegister(m.requests, m.latency)
	if kms != nil {
		tok := kms.Token()
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "p11kms_session_pool_in_use", Help: "PKCS#11 sessions borrowed right now.",
		}, func() float64 { return float64(tok.SessionsInUse()) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "p11kms_session_pool_size", Help: "Bound on open PKCS#11 sessions.",
		}, func() float64 { return float64(tok.PoolSize()) }))
	}
	return m
}

// Observe counts one request.
func (m *Metrics) Observe(r wire.Record) {
	code := r.Code
	if code == "" {
		code = "OK"
	}
	m.requests.WithLabelValues(r.API, r.Action, code).Inc()
	m.latency.WithLabelValues(r.API, r.Action).Observe(r.Latency.Seconds())
}

// TokenCallObserver returns a function for hsm.Instrument that records into
// a histogram registered on reg (the token is opened before the Server).
func TokenCallObserver(reg prometheus.Registerer) func(string, time.Duration) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "p11kms_token_call_duration_seconds", Help: "PKCS#11 call latency.",
		Buckets: prometheus.ExponentialBuckets(0.000001, 4, 12),
	}, []string{"call"})
	reg.MustRegister(h)
	return func(call string, d time.Duration) { h.WithLabelValues(call).Observe(d.Seconds()) }
}
