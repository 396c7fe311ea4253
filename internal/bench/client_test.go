package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

// newTestFixture is a Fixture on a fresh token.
func newTestFixture(t *testing.T) *Fixture {
	t.Helper()
	tok := softhsmtest.New(t)
	fx, err := NewFixture(context.Background(), provider.New(tok.Token, provider.Options{}), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fx.Close)
	return fx
}

// Every operation the bench drives over the server, with every signature
// the bench's own client computes, is accepted by the real server: each
// runs several times (fresh nonces), and a wrong secret is refused, so the
// server does check what the client signs.
func TestLeanClientAcceptedByServer(t *testing.T) {
	fx := newTestFixture(t)
	for _, sig := range Signatures {
		t.Run(string(sig), func(t *testing.T) {
			ops, stop, err := fx.ServerOps(ServerOptions{Signature: sig, Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			names := ServerOpsFor(sig)
			if len(ops) != len(names) || (sig == SignatureTC3) != (len(names) == 2) {
				t.Fatalf("%d operations %v for %d names %v", len(ops), ops, len(names), names)
			}
			for _, name := range names {
				for i := range 3 {
					if err := ops[name].Run(context.Background()); err != nil {
						t.Fatalf("%s, call %d: %v", name, i, err)
					}
				}
			}
		})
	}
}

// A request signed with another secret is refused with the dialect's
// signature error: the acceptance above is not the server ignoring it.
func TestLeanClientWrongSecretRefused(t *testing.T) {
	fx := newTestFixture(t)
	want := map[Signature]string{SignatureACS3: "SignatureDoesNotMatch", SignatureRPC: "SignatureDoesNotMatch",
		SignatureTC3: "AuthFailure.SignatureFailure"}
	key := wire.NewAccessKey("LTAI", wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}})
	srv := httptest.NewServer(server.New(server.Config{KMS: fx.KMS, Keys: wire.NewAccessKeys(key)}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, sig := range Signatures {
		good, err := fx.RemoteOps(addr, key, ServerOptions{Signature: sig, Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := good["server:Decrypt"].Run(context.Background()); err != nil {
			t.Fatalf("%s with the right secret: %v", sig, err)
		}
		wrong := key
		wrong.AccessKeySecret += "x"
		bad, err := fx.RemoteOps(addr, wrong, ServerOptions{Signature: sig, Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := bad["server:Decrypt"].Run(context.Background()); err == nil || !strings.HasPrefix(err.Error(), want[sig]+":") {
			t.Fatalf("%s with a wrong secret: %v, want %s", sig, err, want[sig])
		}
	}
}

// capturedRequest is what an SDK sent to the capturing server.
type capturedRequest struct {
	header http.Header
	host   string
	query  map[string]string
	body   []byte
}

// captureServer records every request and answers 400 with an error body,
// so the SDK calls fail after sending (their results are not used).
func captureServer(t *testing.T) (addr string, got func() []capturedRequest) {
	var mu sync.Mutex
	var reqs []capturedRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := map[string]string{}
		for k, v := range r.URL.Query() {
			q[k] = v[0]
		}
		mu.Lock()
		reqs = append(reqs, capturedRequest{header: r.Header.Clone(), host: r.Host, query: q, body: body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"Code":"Captured","Message":"captured","RequestId":"x"}`)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []capturedRequest {
		mu.Lock()
		defer mu.Unlock()
		return reqs
	}
}

// rpcProtocol are the parameters the RPC signer adds itself.
var rpcProtocol = []string{"AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce", "SignatureVersion",
	"Timestamp", "Version", "Signature"}

// The official Alibaba SDK (ACS3, and RPC with SignatureAlgorithm "v2")
// and Tencent SDK (TC3) sign the bench's requests; the bench's signer,
// given the same request, time and nonce, computes the same signature.
func TestSignaturesMatchSDK(t *testing.T) {
	addr, captured := captureServer(t)
	const ak, secret = "LTAI5tTestAccessKeyId01", "testSecretValue+/=&*~ 1"
	blob := "AQ3+/=" + strings.Repeat("x", 40)
	for _, v := range []*string{nil, tea.String("v2")} {
		c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"),
			RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(ak), AccessKeySecret: tea.String(secret), SignatureAlgorithm: v})
		if err != nil {
			t.Fatal(err)
		}
		c.Decrypt(&alikms.DecryptRequest{CiphertextBlob: tea.String(blob)})
		c.GenerateAndExportDataKey(&alikms.GenerateAndExportDataKeyRequest{KeyId: tea.String("key-1"),
			PublicKeyBlob: tea.String("MII+/="), WrappingKeySpec: tea.String("RSA_2048"), WrappingAlgorithm: tea.String("RSAES_OAEP_SHA_256")})
	}
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint = addr
	cpf.HttpProfile.Scheme = "http"
	tc, err := tckms.NewClient(common.NewCredential("AKIDTestSecretId01", secret), tencentRegion, cpf)
	if err != nil {
		t.Fatal(err)
	}
	dec := tckms.NewDecryptRequest()
	dec.CiphertextBlob = common.StringPtr(blob)
	tc.Decrypt(dec)
	gdk := tckms.NewGenerateDataKeyRequest()
	gdk.KeyId, gdk.KeySpec = common.StringPtr("key-1"), common.StringPtr("AES_256")
	tc.GenerateDataKey(gdk)
	reqs := captured()
	if len(reqs) != 6 {
		t.Fatalf("captured %d requests, want 6", len(reqs))
	}
	for i, r := range reqs {
		var scheme Signature
		switch {
		case i < 2:
			scheme = SignatureACS3
		case i < 4:
			scheme = SignatureRPC
		default:
			scheme = SignatureTC3
		}
		s := Signer{Scheme: scheme, Host: r.host, AccessKeyId: ak, AccessKeySecret: secret}
		got, want := signLike(t, &s, r)
		if got != want {
			t.Errorf("request %d (%s): the bench signs\n%s\nthe SDK signed\n%s", i, scheme, got, want)
		}
	}
}

// signLike signs what the SDK sent in r with s, at the SDK's time and
// nonce, and returns the signature part of both.
func signLike(t *testing.T, s *Signer, r capturedRequest) (ours, sdk string) {
	t.Helper()
	switch s.Scheme {
	case SignatureACS3:
		at, err := time.Parse(alibabaTime, r.header.Get("x-acs-date"))
		if err != nil {
			t.Fatal(err)
		}
		req, err := s.Sign(r.header.Get("x-acs-action"), r.query, at, r.header.Get("x-acs-signature-nonce"))
		if err != nil {
			t.Fatal(err)
		}
		return req.Header.Get("Authorization"), r.header.Get("Authorization")
	case SignatureRPC:
		at, err := time.Parse(alibabaTime, r.query["Timestamp"])
		if err != nil {
			t.Fatal(err)
		}
		params := map[string]string{}
		for k, v := range r.query {
			params[k] = v
		}
		for _, k := range rpcProtocol {
			delete(params, k)
		}
		req, err := s.Sign(r.query["Action"], params, at, r.query["SignatureNonce"])
		if err != nil {
			t.Fatal(err)
		}
		return req.URL.Query().Get("Signature"), r.query["Signature"]
	}
	s.AccessKeyId = "AKIDTestSecretId01"
	sec, err := strconv.ParseInt(r.header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.signTC3(r.header.Get("X-TC-Action"), r.body, time.Unix(sec, 0))
	if err != nil {
		t.Fatal(err)
	}
	return req.Header.Get("Authorization"), r.header.Get("Authorization")
}

// A real run on SoftHSM2 of the operation that reached 119 % of the old
// limit (primitives' wall-clock throughput at the operation's
// concurrency): the limit is now derived from each primitive's CPU cost
// alone by the formula, and the operation does not beat it by more than
// LimitTolerance. Both sides are CPU per operation, so a loaded machine
// slows the operation without raising the ratio.
func TestLimitIsAnUpperBoundOnSoftHSM(t *testing.T) {
	fx := newTestFixture(t)
	op := fx.Ops()["GenerateAndExportDataKey-RSA"]
	const conc = 4
	r := Measure(context.Background(), op, Options{Concurrency: conc, Count: 600, Rounds: 2})
	if r.Errors != 0 || r.Ops != 600 || len(r.PrimitiveCPUUs) != len(op.Primitives) {
		t.Fatalf("%d ops, %d errors (%s), primitive costs %v", r.Ops, r.Errors, r.FirstError, r.PrimitiveCPUUs)
	}
	var costs []float64
	for _, p := range op.Primitives {
		costs = append(costs, r.PrimitiveCPUUs[p.Name]/1e6)
	}
	want := Limit(UsableCores(), conc, costs)
	if d := r.LimitPerSec - want; d > 1e-9*want || d < -1e-9*want || r.LimitCores != min(UsableCores(), conc) {
		t.Fatalf("limit %v over %d cores, want %v = Limit(%d, %d, %v)", r.LimitPerSec, r.LimitCores, want, UsableCores(), conc, costs)
	}
	t.Logf("%.0f ops/s, limit %.0f ops/s (%.0f%%), primitive CPU µs %v, round ratios %v", r.OpsPerSec, r.LimitPerSec, 100*r.Ratio, r.PrimitiveCPUUs, r.RoundRatios)
	if r.Ratio > 1+LimitTolerance {
		t.Fatalf("achieved %.0f ops/s is %.0f%% of the limit %.0f ops/s (tolerance %.0f%%)", r.OpsPerSec, 100*r.Ratio, r.LimitPerSec, 100*LimitTolerance)
	}
}
