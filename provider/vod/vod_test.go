package vod_test

import (
	"github.com/miekg/pkcs11"

	"errors"

	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/vod"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

var bg = context.Background()

// clock is a settable time source for token expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	tok   *softhsmtest.Token
	kms   *provider.Service
	vod   *vod.Service
	clk   *clock
	kfile string
}

// newEnv makes a fresh token, a KMS and a VOD service over it.
func newEnv(t testing.TB) *env {
	t.Helper()
	tok := softhsmtest.New(t)
	e := &env{tok: tok, kms: provider.New(tok.Token, provider.Options{}), clk: &clock{t: time.Now()},
		kfile: filepath.Join(t.TempDir(), vod.TokenKeyFileName)}
	v, err := vod.New(vod.Config{KMS: e.kms, TokenKeyFile: e.kfile, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.vod = v
	return e
}

// newVod makes another VOD service (another "process") on the same token.
func (e *env) newVod(t testing.TB) *vod.Service {
	t.Helper()
	v, err := vod.New(vod.Config{KMS: provider.New(e.tok.Token, provider.Options{}), TokenKeyFile: e.kfile, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := provider.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := vod.New(vod.Config{}); err == nil {
		t.Fatal("New without KMS succeeded")
	}
}

func TestGenerateKMSDataKey(t *testing.T) {
	e := newEnv(t)
	r, err := e.vod.GenerateKMSDataKey(bg, &vod.GenerateKMSDataKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := base64.StdEncoding.DecodeString(r.Plaintext)
	if err != nil || len(pt) != 16 {
		t.Fatalf("Plaintext %q: %d bytes, %v", r.Plaintext, len(pt), err)
	}
	if r.KeyId == "" || r.RequestId == "" || r.CiphertextBlob == "" {
		t.Fatalf("response %+v", r)
	}
	// The media CMK is behind the alias, created on first use.
	id, err := e.kms.ResolveKeyId(bg, vod.MediaKeyAlias)
	if err != nil || id != r.KeyId {
		t.Fatalf("alias -> %q, %v; want %q", id, err, r.KeyId)
	}
	// The KMS decrypts the blob with the HLS context, and only with it.
	d, err := e.kms.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: r.CiphertextBlob, EncryptionContext: vod.HLSEncryptionContext()})
	if err != nil || d.Plaintext != r.Plaintext {
		t.Fatalf("Decrypt: %v", err)
	}
	_, err = e.kms.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: r.CiphertextBlob})
	wantCode(t, err, provider.CodeInvalidCiphertext)
	// The next key uses the same CMK; keys differ.
	r2, err := e.vod.GenerateKMSDataKey(bg, nil)
	if err != nil || r2.KeyId != r.KeyId || r2.Plaintext == r.Plaintext {
		t.Fatalf("second key: %+v %v", r2, err)
	}
	// A disabled media key is refused with the KMS's code.
	if _, err := e.kms.DisableKey(bg, &provider.KeyIdRequest{KeyId: r.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err = e.vod.GenerateKMSDataKey(bg, nil)
	wantCode(t, err, provider.CodeDisabled)
}

// Several services (as several processes) use the media key for the first
// time at once: one alias, one key in use, every call succeeds, losers'
// keys are scheduled for deletion.
func TestMediaKeyCreationRace(t *testing.T) {
	e := newEnv(t)
	const n = 6
	svcs := make([]*vod.Service, n)
	for i := range svcs {
		svcs[i] = e.newVod(t)
	}
	ids := make([]string, 2*n)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < 2*n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := svcs[i%n].GenerateKMSDataKey(bg, nil)
			if err != nil {
				errs <- err
				return
			}
			ids[i] = r.KeyId
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var pe *provider.Error
		if errors.As(err, &pe) {
			t.Logf("cause: %v", pe.Err)
		}
		t.Fatal(err)
	}
	for _, id := range ids {
		if id != ids[0] {
			hs, err := e.tok.Token.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, "p11kms-alias")})
			t.Logf("alias objects %v %v", hs, err)
			for _, h := range hs {
				a, err := e.tok.Token.Attributes(bg, h, pkcs11.CKA_VALUE)
				t.Logf("  %d %q %v", h, a[pkcs11.CKA_VALUE], err)
			}
			t.Fatalf("keys differ: %v", ids)
		}
	}
	keys, err := e.kms.ListKeys(bg, &provider.ListKeysRequest{PageSize: new(100)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.Keys.Key {
		if k.KeyId == ids[0] {
			continue
		}
		d, err := e.kms.DescribeKey(bg, &provider.KeyIdRequest{KeyId: k.KeyId})
		if err != nil || d.KeyMetadata.KeyState != provider.StatePendingDeletion {
			t.Fatalf("losing key %s: %+v %v", k.KeyId, d, err)
		}
	}
	aliases, err := e.kms.ListAliases(bg, &provider.ListAliasesRequest{PageSize: new(100)})
	if err != nil || aliases.TotalCount != 1 {
		t.Fatalf("aliases: %+v %v", aliases, err)
	}
}

// The play-token secret is created once in TokenKeyFile (0600) and shared
// by services that use the file, concurrently.
func TestTokenKeyFileShared(t *testing.T) {
	e := newEnv(t)
	gk, err := e.vod.GenerateKMSDataKey(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	svcs := []*vod.Service{e.vod, e.newVod(t), e.newVod(t), e.newVod(t)}
	toks := make([]string, len(svcs))
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.IssuePlayToken(bg, &vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob})
			if err != nil {
				t.Error(err)
				return
			}
			toks[i] = r.MtsHlsUriToken
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	st, err := os.Stat(e.kfile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token key file: %v %v", st, err)
	}
	ct, _ := base64.StdEncoding.DecodeString(gk.CiphertextBlob)
	for _, tok := range toks {
		for _, s := range svcs {
			if err := s.VerifyPlayToken(bg, ct, tok); err != nil {
				t.Fatalf("token of one service refused by another: %v", err)
			}
		}
	}
	// The blob may also be given directly.
	blob, _ := os.ReadFile(e.kfile)
	v, _ := vod.New(vod.Config{KMS: e.kms, TokenKeyBlob: string(blob), Now: e.clk.Now})
	if err := v.VerifyPlayToken(bg, ct, toks[0]); err != nil {
		t.Fatal(err)
	}
	// A blob from another token is a clear error, not a silent new key.
	other := newEnv(t)
	v, _ = vod.New(vod.Config{KMS: other.kms, TokenKeyFile: e.kfile})
	if _, err := other.vod.GenerateKMSDataKey(bg, nil); err != nil {
		t.Fatal(err)
	}
	err = v.Init(bg)
	wantCode(t, err, provider.CodeInvalidCiphertext)
	// No configured key: play tokens are unsupported, data keys work.
	v, _ = vod.New(vod.Config{KMS: e.kms})
	_, err = v.IssuePlayToken(bg, &vod.IssuePlayTokenRequest{Ciphertext: gk.CiphertextBlob})
	wantCode(t, err, provider.CodeUnsupportedOp)
}

func TestInit(t *testing.T) {
	e := newEnv(t)
	if err := e.vod.Init(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kms.ResolveKeyId(bg, vod.MediaKeyAlias); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.kfile); err != nil {
		t.Fatal(err)
	}
}
