package bench

import (
	"context"
	"net"
	"net/http"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// ServerOps starts the composed server on a loopback port (in this
// process, over the fixture's KMS) and returns operations that call it
// with signed requests from the official Alibaba SDK (ACS3-HMAC-SHA256),
// one client per concurrent caller. stop shuts the server down.
func (f *Fixture) ServerOps() (ops map[string]Op, stop func(), err error) {
	key := wire.NewAccessKey("LTAI", wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}})
	srv := &http.Server{Handler: server.New(server.Config{KMS: f.KMS, Keys: wire.NewAccessKeys(key)})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	go srv.Serve(ln)
	return f.RemoteOps(ln.Addr().String(), key), func() { srv.Close() }, nil
}

// RemoteOps are ServerOps against a server already running at addr (e.g.
// `p11kms serve --processes N` on the same token), signed with key.
func (f *Fixture) RemoteOps(addr string, key wire.AccessKey) map[string]Op {
	clients := make(chan *alikms.Client, 256)
	client := func() (*alikms.Client, error) {
		select {
		case c := <-clients:
			return c, nil
		default:
		}
		// MaxIdleConns: the SDK's clients share one HTTP transport, which
		// otherwise keeps 2 idle connections per host (Go's default), so
		// that 14 of 16 callers open a new TCP connection per request.
		return alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"),
			RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(key.AccessKeyId), AccessKeySecret: tea.String(key.AccessKeySecret),
			MaxIdleConns: tea.Int(sdkIdleConns)})
	}
	put := func(c *alikms.Client) {
		select {
		case clients <- c:
		default:
		}
	}
	exportReq := &alikms.GenerateAndExportDataKeyRequest{KeyId: tea.String(f.KeyId), PublicKeyBlob: tea.String(f.rsaB64),
		WrappingKeySpec: tea.String("RSA_2048"), WrappingAlgorithm: tea.String("RSAES_OAEP_SHA_256")}
	sm2Req := &alikms.GenerateAndExportDataKeyRequest{KeyId: tea.String(f.KeyId), PublicKeyBlob: tea.String(f.sm2B64),
		WrappingKeySpec: tea.String("EC_SM2"), WrappingAlgorithm: tea.String("SM2PKE")}
	decReq := &alikms.DecryptRequest{CiphertextBlob: tea.String(f.blob)}
	call := func(fn func(*alikms.Client) error) func(context.Context) error {
		return func(context.Context) error {
			c, err := client()
			if err != nil {
				return err
			}
			defer put(c)
			return fn(c)
		}
	}
	return map[string]Op{
		"server:GenerateAndExportDataKey-RSA": {Name: "HTTP+ACS3 GenerateAndExportDataKey RSA-2048", Run: call(func(c *alikms.Client) error {
			_, err := c.GenerateAndExportDataKey(exportReq)
			return err
		})},
		"server:GenerateAndExportDataKey-SM2": {Name: "HTTP+ACS3 GenerateAndExportDataKey SM2", Run: call(func(c *alikms.Client) error {
			_, err := c.GenerateAndExportDataKey(sm2Req)
			return err
		})},
		"server:Decrypt": {Name: "HTTP+ACS3 Decrypt", Run: call(func(c *alikms.Client) error {
			_, err := c.Decrypt(decReq)
			return err
		})},
	}
}

// sdkIdleConns is the SDK's idle-connection limit in the bench: above any
// concurrency it runs at, so that every caller keeps its connection.
const sdkIdleConns = 256

// ServerOpNames lists the server operations and the in-process operation
// each is compared with.
var ServerOpNames = [][2]string{
	{"server:GenerateAndExportDataKey-RSA", "GenerateAndExportDataKey-RSA"},
	{"server:GenerateAndExportDataKey-SM2", "GenerateAndExportDataKey-SM2"},
	{"server:Decrypt", "Decrypt"},
}
