package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/miekg/pkcs11"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/hsmtest"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/audit"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// secretsSeen collects every secret the test handles, in every form it could
// be printed in: as given, base64, hex, and as the 64-bit words a stack
// trace prints an argument passed by value as.
type secretsSeen struct {
	mu   sync.Mutex
	list []string
}

func (s *secretsSeen) text(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v != "" {
		s.list = append(s.list, v)
	}
}

func (s *secretsSeen) bytes(b []byte) {
	if len(b) == 0 {
		return
	}
	s.text(base64.StdEncoding.EncodeToString(b))
	s.text(hex.EncodeToString(b))
	if len(b) >= 6 {
		s.text(string(b))
	}
	for i := 0; i+8 <= len(b); i += 8 {
		s.text(fmt.Sprintf("0x%x", binary.LittleEndian.Uint64(b[i:])))
	}
}

func (s *secretsSeen) base64(v string) {
	b, _ := base64.StdEncoding.DecodeString(v)
	s.text(v)
	s.bytes(b)
}

// plaintextCapture forwards every call to the module below it and records
// what reaches C_Encrypt while armed: the data key a request was sealing
// when the test made that call panic, which no response returns.
type plaintextCapture struct {
	hsm.Module
	armed   atomic.Bool
	secrets *secretsSeen
}

func (m *plaintextCapture) Encrypt(sh pkcs11.SessionHandle, pt []byte) ([]byte, error) {
	if m.armed.Load() {
		m.secrets.bytes(append([]byte(nil), pt...))
	}
	return m.Module.Encrypt(sh, pt)
}

// Every action of both wire APIs, run with debug logging on — the ones that
// succeed and ones that fail with the secret in the request — and a panic
// injected inside the token call that seals a data key: no PIN, access-key
// secret, plaintext, data key or random output appears in the logs (the
// process's default logger and the server's), the audit lines or the error
// messages the clients get, and the server keeps serving after the panic.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	debug := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	old := slog.Default()
	slog.SetDefault(debug)
	defer slog.SetDefault(old)

	secrets := &secretsSeen{}
	created := softhsmtest.Create(t)
	faults := hsmtest.New()
	capture := &plaintextCapture{secrets: secrets}
	cfg := created.Config
	cfg.Wrap = func(m hsm.Module) hsm.Module { capture.Module = faults.Wrap(m); return capture }
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
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, Audit: alog, Log: debug}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ali := aliClient(t, addr)
	tc := tcClient(t, addr)
	secrets.text(created.PIN)
	secrets.text(created.SOPIN)
	secrets.text(aliSecret)
	secrets.text(tcSecret)

	var errs []string
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mustFail := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded; the test needs it to fail", what)
		}
		errs = append(errs, err.Error())
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	pub := tea.String(base64.StdEncoding.EncodeToString(der))
	rsaSpec, oaep := tea.String("RSA_2048"), tea.String("RSAES_OAEP_SHA_256")

	// Alibaba: every action.
	ck, err := ali.CreateKey(&alikms.CreateKeyRequest{Description: tea.String("hygiene")})
	must("CreateKey", err)
	id := ck.Body.KeyMetadata.KeyId
	other, err := ali.CreateKey(&alikms.CreateKeyRequest{})
	must("CreateKey", err)
	_, err = ali.DescribeKey(&alikms.DescribeKeyRequest{KeyId: id})
	must("DescribeKey", err)
	_, err = ali.ListKeys(&alikms.ListKeysRequest{})
	must("ListKeys", err)
	_, err = ali.CreateAlias(&alikms.CreateAliasRequest{AliasName: tea.String("alias/hygiene"), KeyId: id})
	must("CreateAlias", err)
	_, err = ali.UpdateAlias(&alikms.UpdateAliasRequest{AliasName: tea.String("alias/hygiene"), KeyId: other.Body.KeyMetadata.KeyId})
	must("UpdateAlias", err)
	_, err = ali.ListAliases(&alikms.ListAliasesRequest{})
	must("ListAliases", err)
	_, err = ali.ListAliasesByKeyId(&alikms.ListAliasesByKeyIdRequest{KeyId: id})
	must("ListAliasesByKeyId", err)
	v, err := ali.CreateKeyVersion(&alikms.CreateKeyVersionRequest{KeyId: id})
	must("CreateKeyVersion", err)
	_, err = ali.ListKeyVersions(&alikms.ListKeyVersionsRequest{KeyId: id})
	must("ListKeyVersions", err)
	_, err = ali.DescribeKeyVersion(&alikms.DescribeKeyVersionRequest{KeyId: id, KeyVersionId: v.Body.KeyVersion.KeyVersionId})
	must("DescribeKeyVersion", err)
	_, err = ali.UpdateRotationPolicy(&alikms.UpdateRotationPolicyRequest{KeyId: id, EnableAutomaticRotation: tea.Bool(true), RotationInterval: tea.String("604800s")})
	must("UpdateRotationPolicy", err)
	var blobs []*string
	for range 3 {
		g, err := ali.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: id, EncryptionContext: map[string]any{"a": "b"}})
		must("GenerateDataKey", err)
		secrets.base64(tea.StringValue(g.Body.Plaintext))
		blobs = append(blobs, g.Body.CiphertextBlob)
		// Failing calls that carry the key material back in.
		_, err = ali.Decrypt(&alikms.DecryptRequest{CiphertextBlob: g.Body.Plaintext})
		mustFail("Decrypt of a plaintext", err)
		_, err = ali.Encrypt(&alikms.EncryptRequest{KeyId: tea.String("alias/none"), Plaintext: g.Body.Plaintext})
		mustFail("Encrypt under a missing alias", err)
		_, err = ali.Decrypt(&alikms.DecryptRequest{CiphertextBlob: g.Body.CiphertextBlob})
		mustFail("Decrypt without its context", err)
		_, err = kms.Decrypt(t.Context(), &provider.DecryptRequest{CiphertextBlob: tea.StringValue(g.Body.Plaintext)})
		mustFail("library Decrypt of a plaintext", err)
	}
	gw, err := ali.GenerateDataKeyWithoutPlaintext(&alikms.GenerateDataKeyWithoutPlaintextRequest{KeyId: id})
	must("GenerateDataKeyWithoutPlaintext", err)
	d, err := ali.Decrypt(&alikms.DecryptRequest{CiphertextBlob: gw.Body.CiphertextBlob})
	must("Decrypt", err)
	secrets.base64(tea.StringValue(d.Body.Plaintext))
	ge, err := ali.GenerateAndExportDataKey(&alikms.GenerateAndExportDataKeyRequest{KeyId: id, PublicKeyBlob: pub, WrappingKeySpec: rsaSpec, WrappingAlgorithm: oaep})
	must("GenerateAndExportDataKey", err)
	d, err = ali.Decrypt(&alikms.DecryptRequest{CiphertextBlob: ge.Body.CiphertextBlob})
	must("Decrypt", err)
	secrets.base64(tea.StringValue(d.Body.Plaintext))
	_, err = ali.ExportDataKey(&alikms.ExportDataKeyRequest{CiphertextBlob: ge.Body.CiphertextBlob, PublicKeyBlob: pub, WrappingKeySpec: rsaSpec, WrappingAlgorithm: oaep})
	must("ExportDataKey", err)
	message := base64.StdEncoding.EncodeToString([]byte("the quarterly numbers, not yet public"))
	secrets.base64(message)
	e, err := ali.Encrypt(&alikms.EncryptRequest{KeyId: id, Plaintext: tea.String(message)})
	must("Encrypt", err)
	_, err = ali.ReEncrypt(&alikms.ReEncryptRequest{CiphertextBlob: e.Body.CiphertextBlob, DestinationKeyId: other.Body.KeyMetadata.KeyId})
	must("ReEncrypt", err)
	_, err = ali.DisableKey(&alikms.DisableKeyRequest{KeyId: id})
	must("DisableKey", err)
	_, err = ali.Encrypt(&alikms.EncryptRequest{KeyId: id, Plaintext: tea.String(message)})
	mustFail("Encrypt under a disabled key", err)
	_, err = ali.EnableKey(&alikms.EnableKeyRequest{KeyId: id})
	must("EnableKey", err)
	_, err = ali.DeleteAlias(&alikms.DeleteAliasRequest{AliasName: tea.String("alias/hygiene")})
	must("DeleteAlias", err)
	_, err = ali.ScheduleKeyDeletion(&alikms.ScheduleKeyDeletionRequest{KeyId: other.Body.KeyMetadata.KeyId, PendingWindowInDays: tea.Int32(7)})
	must("ScheduleKeyDeletion", err)
	_, err = ali.CancelKeyDeletion(&alikms.CancelKeyDeletionRequest{KeyId: other.Body.KeyMetadata.KeyId})
	must("CancelKeyDeletion", err)

	// Tencent: every action.
	tcr := tckms.NewCreateKeyRequest()
	tcr.Alias = common.StringPtr("hygiene-tc")
	tk, err := tc.CreateKey(tcr)
	must("Tencent CreateKey", err)
	tid := tk.Response.KeyId
	dk := tckms.NewDescribeKeyRequest()
	dk.KeyId = tid
	_, err = tc.DescribeKey(dk)
	must("Tencent DescribeKey", err)
	dks := tckms.NewDescribeKeysRequest()
	dks.KeyIds = []*string{tid}
	_, err = tc.DescribeKeys(dks)
	must("Tencent DescribeKeys", err)
	_, err = tc.ListKeys(tckms.NewListKeysRequest())
	must("Tencent ListKeys", err)
	ua := tckms.NewUpdateAliasRequest()
	ua.KeyId, ua.Alias = tid, common.StringPtr("hygiene-tc-2")
	_, err = tc.UpdateAlias(ua)
	must("Tencent UpdateAlias", err)
	er := tckms.NewEnableKeyRotationRequest()
	er.KeyId = tid
	_, err = tc.EnableKeyRotation(er)
	must("Tencent EnableKeyRotation", err)
	gr := tckms.NewGetKeyRotationStatusRequest()
	gr.KeyId = tid
	_, err = tc.GetKeyRotationStatus(gr)
	must("Tencent GetKeyRotationStatus", err)
	dr := tckms.NewDisableKeyRotationRequest()
	dr.KeyId = tid
	_, err = tc.DisableKeyRotation(dr)
	must("Tencent DisableKeyRotation", err)
	_, err = tc.GetServiceStatus(tckms.NewGetServiceStatusRequest())
	must("Tencent GetServiceStatus", err)
	tg := tckms.NewGenerateDataKeyRequest()
	tg.KeyId, tg.KeySpec = tid, common.StringPtr("AES_256")
	tgr, err := tc.GenerateDataKey(tg)
	must("Tencent GenerateDataKey", err)
	secrets.base64(*tgr.Response.Plaintext)
	tenc := tckms.NewEncryptRequest()
	tenc.KeyId, tenc.Plaintext = tid, common.StringPtr(message)
	te, err := tc.Encrypt(tenc)
	must("Tencent Encrypt", err)
	tdec := tckms.NewDecryptRequest()
	tdec.CiphertextBlob = te.Response.CiphertextBlob
	td, err := tc.Decrypt(tdec)
	must("Tencent Decrypt", err)
	secrets.base64(*td.Response.Plaintext)
	tdec.CiphertextBlob = tgr.Response.Plaintext
	_, err = tc.Decrypt(tdec)
	mustFail("Tencent Decrypt of a plaintext", err)
	tre := tckms.NewReEncryptRequest()
	tre.CiphertextBlob, tre.DestinationKeyId = te.Response.CiphertextBlob, tid
	_, err = tc.ReEncrypt(tre)
	must("Tencent ReEncrypt", err)
	trn := tckms.NewGenerateRandomRequest()
	trn.NumberOfBytes = common.Uint64Ptr(32)
	rnd, err := tc.GenerateRandom(trn)
	must("Tencent GenerateRandom", err)
	secrets.base64(*rnd.Response.Plaintext)
	done := map[string]bool{}
	for _, action := range []string{"DisableKey", "EnableKey", "DisableKeys", "EnableKeys", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "EnableKey"} {
		if done[action] {
			// The same state change with the same parameters again: signed
			// anew, in the next second (a TC3 signature changes state once).
			nextSecond()
			clear(done)
		}
		done[action] = true
		var err error
		switch action {
		case "DisableKey":
			r := tckms.NewDisableKeyRequest()
			r.KeyId = tid
			_, err = tc.DisableKey(r)
		case "EnableKey":
			r := tckms.NewEnableKeyRequest()
			r.KeyId = tid
			_, err = tc.EnableKey(r)
		case "DisableKeys":
			r := tckms.NewDisableKeysRequest()
			r.KeyIds = []*string{tid}
			_, err = tc.DisableKeys(r)
		case "EnableKeys":
			r := tckms.NewEnableKeysRequest()
			r.KeyIds = []*string{tid}
			_, err = tc.EnableKeys(r)
		case "ScheduleKeyDeletion":
			r := tckms.NewScheduleKeyDeletionRequest()
			r.KeyId, r.PendingWindowInDays = tid, common.Uint64Ptr(7)
			_, err = tc.ScheduleKeyDeletion(r)
		case "CancelKeyDeletion":
			r := tckms.NewCancelKeyDeletionRequest()
			r.KeyId = tid
			_, err = tc.CancelKeyDeletion(r)
		}
		must("Tencent "+action, err)
	}

	// A panic inside the token call that seals a new data key, through
	// each API: an internal error to the client, the cause in the server's
	// log, and the next request served.
	capture.armed.Store(true)
	faults.Add(hsmtest.Fault{Call: "C_Encrypt", Panic: true})
	_, err = ali.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: id})
	if err == nil || !strings.Contains(err.Error(), "Code: "+provider.CodeInternalFailure) {
		t.Fatalf("Alibaba GenerateDataKey with a panic in the token call: %v, want InternalFailure", err)
	}
	errs = append(errs, err.Error())
	faults.Add(hsmtest.Fault{Call: "C_Encrypt", Panic: true})
	_, err = tc.GenerateDataKey(tg)
	if err == nil || !strings.Contains(err.Error(), "InternalError") {
		t.Fatalf("Tencent GenerateDataKey with a panic in the token call: %v, want InternalError", err)
	}
	errs = append(errs, err.Error())
	capture.armed.Store(false)
	faults.Clear()
	for range 2 * tok.PoolSize() { // the panicking calls gave their sessions' places back
		_, err = ali.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: id})
		must("GenerateDataKey after the panics", err)
	}
	logMu.Lock()
	logText := logs.String()
	logMu.Unlock()
	if strings.Count(logText, hsmtest.Panicked) < 2 {
		t.Fatalf("the panics' causes are not in the server's log:\n%s", logText)
	}

	b, _ := os.ReadFile(auditPath)
	haystacks := map[string]string{"logs": logText, "audit": string(b), "errors": strings.Join(errs, "\n")}
	secrets.mu.Lock()
	defer secrets.mu.Unlock()
	if len(secrets.list) < 60 {
		t.Fatalf("only %d secret forms collected", len(secrets.list))
	}
	t.Logf("%d forms of secrets looked for in %d bytes of logs, %d of audit and %d of errors", len(secrets.list), len(logText), len(b), len(haystacks["errors"]))
	for where, text := range haystacks {
		for _, s := range secrets.list {
			if strings.Contains(text, s) {
				t.Fatalf("a secret (%d characters) appears in the %s", len(s), where)
			}
		}
	}
	if !strings.Contains(logText, "pin-value=<redacted>") {
		t.Fatalf("the config log line did not redact the PIN:\n%s", logText)
	}
}
