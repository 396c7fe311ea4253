package xks_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkUnderLoad measures Encrypt and Decrypt through the whole path —
// aws-sdk-go-v2 signing, loopback HTTP, SigV4 verification, replay memory,
// policy, the token's AES-GCM — with GOMAXPROCS×4 concurrent clients, and
// reports the latency percentiles (AWS KMS gives up at 250 ms), for a
// token key (foo) and a CMK-backed key (cmk):
//
//	go test -run '^$' -bench BenchmarkUnderLoad -benchtime 3000x ./provider/xks
func BenchmarkUnderLoad(b *testing.B) {
	f := newFixture(b, nil)
	sealed := f.post("keys/foo/encrypt", encryptBody(string(make([]byte, 32)), "aad", ""))
	sealedCMK := f.post("keys/cmk/encrypt", encryptBody(string(make([]byte, 32)), "aad", ""))
	for _, op := range []struct {
		name string
		path string
		body func() string
	}{
		{"Encrypt", "keys/foo/encrypt", func() string { return encryptBody(string(make([]byte, 32)), "aad", "") }},
		{"Decrypt", "keys/foo/decrypt", func() string { return decryptBody(sealed, "aad") }},
		{"Encrypt-CMK", "keys/cmk/encrypt", func() string { return encryptBody(string(make([]byte, 32)), "aad", "") }},
		{"Decrypt-CMK", "keys/cmk/decrypt", func() string { return decryptBody(sealedCMK, "aad") }},
	} {
		b.Run(op.name, func(b *testing.B) {
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := f.signed(http.MethodPost, "/"+prefix+"/kms/xks/v1/"+op.path, op.body(), testSecret)
					start := time.Now()
					resp, err := http.DefaultClient.Do(req)
					d := time.Since(start)
					if err != nil || resp.StatusCode != 200 {
						b.Errorf("%s: %v %v", op.name, err, resp)
						return
					}
					resp.Body.Close()
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(1), "max-ms")
		})
	}
}
