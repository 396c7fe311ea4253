package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/audit"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/softhsm/softhsmtest"
)

// With debug logging on, no PIN, access-key secret, plaintext data key or
// exported key appears in logs, audit lines or error messages.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)

	created := softhsmtest.Create(t)
	cfg := created.Config
	slog.Debug("opening token", "config", cfg) // Config must redact its PIN
	tok, err := hsm.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	kms := provider.New(tok, provider.Options{})
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	alog, _ := audit.Open(auditPath, nil)
	defer alog.Close()
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, Audit: alog}))
	defer srv.Close()
	c, _ := alikms.NewClient(&openapi.Config{Endpoint: tea.String(strings.TrimPrefix(srv.URL, "http://")), Protocol: tea.String("HTTP"),
		RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(aliID), AccessKeySecret: tea.String(aliSecret)})
	ck, err := c.CreateKey(&alikms.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	var errs []string
	for i := 0; i < 5; i++ {
		g, err := c.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: ck.Body.KeyMetadata.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		pt := tea.StringValue(g.Body.Plaintext)
		raw, _ := base64.StdEncoding.DecodeString(pt)
		secrets = append(secrets, pt, hex.EncodeToString(raw))
		// Failing calls that carry the key material back in.
		_, err = c.Decrypt(&alikms.DecryptRequest{CiphertextBlob: tea.String(pt)})
		errs = append(errs, err.Error())
		_, err = c.Encrypt(&alikms.EncryptRequest{KeyId: tea.String("alias/none"), Plaintext: tea.String(pt)})
		errs = append(errs, err.Error())
		_, err = kms.Decrypt(t.Context(), &provider.DecryptRequest{CiphertextBlob: pt})
		errs = append(errs, err.Error())
	}
	secrets = append(secrets, created.PIN, created.SOPIN, aliSecret)
	b, _ := readFile(auditPath)
	haystacks := map[string]string{"logs": logs.String(), "audit": b, "errors": strings.Join(errs, "\n")}
	for where, text := range haystacks {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Fatalf("a secret appears in the %s", where)
			}
		}
	}
	if !strings.Contains(logs.String(), "pin=<redacted>") {
		t.Fatalf("the config log line did not redact the PIN:\n%s", logs.String())
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
