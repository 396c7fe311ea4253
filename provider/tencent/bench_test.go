package tencent_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	kms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"
)

// BenchmarkGenerateDataKeyWithPublicKey is the whole path the SDK drives:
// TC3 signing, loopback HTTP, verification, the token (RNG and AES-GCM)
// and the public-key encryption of the data key, with 1 and 16 clients
// (each its own SDK client and connection) sending concurrently.
func BenchmarkGenerateDataKeyWithPublicKey(b *testing.B) {
	e := newEnv(b)
	id := createKey(b, e.client(b, variants[0], secretID, secretKey), "bench")
	for _, r := range receivers(b) {
		name := r.alg
		switch name {
		case "":
			name = "SM2-default"
		case "SM2", "RSAES_OAEP_SHA_1":
			continue // same cost as SM2-default, RSAES_OAEP_SHA_256
		}
		for _, n := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", name, n), func(b *testing.B) {
				clients := make([]*kms.Client, n)
				for i := range clients {
					clients[i] = e.client(b, variants[0], secretID, secretKey)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for _, c := range clients {
					wg.Go(func() {
						req := kms.NewGenerateDataKeyRequest()
						req.KeyId, req.KeySpec, req.EncryptionPublicKey = &id, common.StringPtr("AES_256"), common.StringPtr(r.pem)
						if r.alg != "" {
							req.EncryptionAlgorithm = common.StringPtr(r.alg)
						}
						for next.Add(1) <= int64(b.N) {
							if _, err := c.GenerateDataKey(req); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}
