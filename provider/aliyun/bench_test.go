package aliyun_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	util "github.com/alibabacloud-go/tea-utils/v2/service"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/aliyun"
	"github.com/p11kms/p11kms/provider/wire"
)

// BenchmarkGenerateAndExportDataKey: signed GenerateAndExportDataKey calls
// from the official v3 SDK over loopback HTTP (sign, send, verify, policy,
// token RNG + AES-GCM, public-key encryption, JSON), with 1 and 16
// concurrent clients, each with its own SDK client and keep-alive
// connections.
func BenchmarkGenerateAndExportDataKey(b *testing.B) {
	e := newEnvWith(b, false)
	admin := newClient(b, variantACS3, e.addr, testAK, testSecret)
	k := must(admin.CreateKey("bench"))(b)
	rt := &util.RuntimeOptions{MaxIdleConns: tea.Int(64)}
	for _, w := range wrappingKeys(b) {
		for _, scheme := range []string{variantACS3, variantRPC} {
			newSDK := func() *kms.Client {
				cfg := &openapi.Config{Endpoint: tea.String(e.addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
					AccessKeyId: tea.String(testAK), AccessKeySecret: tea.String(testSecret)}
				if scheme == variantRPC {
					cfg.SignatureAlgorithm = tea.String("v2")
				}
				c, err := kms.NewClient(cfg)
				if err != nil {
					b.Fatal(err)
				}
				return c
			}
			req := &kms.GenerateAndExportDataKeyRequest{KeyId: tea.String(k.KeyId), KeySpec: tea.String("AES_256"),
				PublicKeyBlob: tea.String(w.blob), WrappingKeySpec: tea.String(w.spec), WrappingAlgorithm: tea.String(w.alg),
				EncryptionContext: map[string]any{"purpose": "bench"}}
			call := func(c *kms.Client) error {
				r, err := c.GenerateAndExportDataKeyWithOptions(req, rt)
				if err == nil && tea.StringValue(r.Body.ExportedDataKey) == "" {
					err = fmt.Errorf("no exported key")
				}
				return err
			}
			b.Run(fmt.Sprintf("%s/%s/clients=1", scheme, w.spec), func(b *testing.B) {
				c := newSDK()
				for b.Loop() {
					if err := call(c); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%s/clients=16", scheme, w.spec), func(b *testing.B) {
				procs := runtime.GOMAXPROCS(0)
				p := max(1, (16+procs-1)/procs)
				b.SetParallelism(p)
				b.ReportMetric(float64(p*procs), "clients")
				b.RunParallel(func(pb *testing.PB) {
					c := newSDK()
					for pb.Next() {
						if err := call(c); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// signRPC signs params with the RPC HMAC-SHA1 scheme, as the SDKs do, and
// returns the query string.
func signRPC(method string, params map[string]string, secret string) string {
	vals := url.Values{}
	for k, v := range params {
		vals.Set(k, v)
	}
	canon := strings.ReplaceAll(vals.Encode(), "+", "%20")
	sts := method + "&%2F&" + url.QueryEscape(canon)
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(sts))
	vals.Set("Signature", base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return vals.Encode()
}

// BenchmarkHandler: the server side alone — a freshly RPC-signed
// GenerateAndExportDataKey (RSA_2048) through the handler, without HTTP or
// an SDK: verification, nonce memory, decoding, policy, the provider and
// JSON.
func BenchmarkHandler(b *testing.B) {
	tok := softhsmtest.New(b)
	svc := provider.New(tok.Token, provider.Options{})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: testAK, AccessKeySecret: testSecret,
		Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	h := aliyun.New(aliyun.Config{KMS: svc, Keys: keys, Observer: &counter{}})
	k, err := svc.CreateKey(context.Background(), &provider.CreateKeyRequest{})
	if err != nil {
		b.Fatal(err)
	}
	w := wrappingKeys(b)[0]
	var seq atomic.Int64
	call := func() error {
		q := signRPC("POST", map[string]string{"AccessKeyId": testAK, "Action": "GenerateAndExportDataKey", "Format": "JSON",
			"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": strconv.FormatInt(seq.Add(1), 10) + "-bench",
			"Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05Z"), "Version": aliyun.APIVersion,
			"KeyId": k.KeyMetadata.KeyId, "PublicKeyBlob": w.blob, "WrappingKeySpec": w.spec, "WrappingAlgorithm": w.alg,
			"EncryptionContext": `{"purpose":"bench"}`}, testSecret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/?"+q, nil))
		if rec.Code != 200 {
			return fmt.Errorf("HTTP %d: %s", rec.Code, rec.Body)
		}
		return nil
	}
	b.Run("clients=1", func(b *testing.B) {
		for b.Loop() {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("clients=16", func(b *testing.B) {
		procs := runtime.GOMAXPROCS(0)
		p := max(1, (16+procs-1)/procs)
		b.SetParallelism(p)
		b.ReportMetric(float64(p*procs), "clients")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
