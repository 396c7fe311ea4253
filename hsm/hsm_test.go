package hsm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childOp) != "" {
		os.Exit(runChild())
	}
	if uri := os.Getenv(childOpenURI); uri != "" {
		os.Exit(runOpenURIChild(uri))
	}
	softhsmtest.Main(m)
}

var bg = context.Background()

func TestTwoTokensOneProcess(t *testing.T) {
	a := softhsmtest.New(t)
	b := softhsmtest.New(t)
	if a.ModulePath() != b.ModulePath() || a.SlotID() == b.SlotID() {
		t.Fatalf("tokens: %s slot %d, %s slot %d", a.ModulePath(), a.SlotID(), b.ModulePath(), b.SlotID())
	}
	ka, err := a.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: "in-a", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.FindSecretKeyByLabel(bg, "in-a"); !errors.Is(err, hsm.ErrNotFound) {
		t.Fatalf("token b sees token a's key: %v", err)
	}
	if _, err := a.FindSecretKeyByLabel(bg, "in-a"); err != nil {
		t.Fatal(err)
	}
	// Closing one token leaves the shared module usable by the other.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, 12)
	if _, err := a.EncryptGCM(bg, ka, iv, []byte("x"), []byte("aad")); err != nil {
		t.Fatalf("token a after closing b: %v", err)
	}
	if _, err := b.Random(bg, 4); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("closed token: %v", err)
	}
}

func TestModuleFinalizedWhenLastTokenCloses(t *testing.T) {
	tok := softhsmtest.Create(t)
	a, err := hsm.Open(bg, tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hsm.Open(bg, tok.Config) // the same token twice shares the module
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := b.Random(bg, 8); err != nil {
		t.Fatalf("second handle after first closed: %v", err)
	}
	b.Close()
	// Finalised: a new open initialises the module again and works.
	c, err := hsm.Open(bg, tok.Config)
	if err != nil {
		t.Fatalf("reopen after finalize: %v", err)
	}
	defer c.Close()
	if _, err := c.Random(bg, 8); err != nil {
		t.Fatal(err)
	}
}

func TestLibraryToleratesAlreadyInitialized(t *testing.T) {
	e := softhsmtest.Env(t)
	// A second, independent miekg context initialises the module first.
	other := pkcs11.New(e.ModulePath)
	if err := other.Initialize(); err != nil && !hsm.IsCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		t.Fatal(err)
	}
	tok := softhsmtest.New(t)
	if _, err := tok.Random(bg, 8); err != nil {
		t.Fatal(err)
	}
	_ = other // left initialised on purpose; the shared library state is refcounted by us
}

func TestPINSources(t *testing.T) {
	tok := softhsmtest.Create(t)
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "user.pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("file", func(t *testing.T) {
		c, err := hsm.Open(bg, hsm.Config{ModulePath: tok.Env.ModulePath, TokenLabel: tok.Label, PINFile: pinFile})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("P11KMS_TEST_PIN", tok.PIN)
		c, err := hsm.Open(bg, hsm.Config{ModulePath: tok.Env.ModulePath, TokenLabel: tok.Label, PINEnv: "P11KMS_TEST_PIN"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("uri-pin-source", func(t *testing.T) {
		uri := fmt.Sprintf("pkcs11:token=%s?module-path=%s&pin-source=file:%s", tok.Label, tok.Env.ModulePath, pinFile)
		c, err := hsm.OpenURI(bg, uri)
		if err != nil {
			t.Fatal(err)
		}
		if c.Label() != tok.Label {
			t.Fatalf("label %q", c.Label())
		}
		c.Close()
	})
	t.Run("uri-pin-value", func(t *testing.T) {
		c, err := hsm.OpenURI(bg, fmt.Sprintf("pkcs11:token=%s?module-path=%s&pin-value=%s", tok.Label, tok.Env.ModulePath, tok.PIN))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("missing-file", func(t *testing.T) {
		_, err := hsm.Open(bg, hsm.Config{ModulePath: tok.Env.ModulePath, TokenLabel: tok.Label, PINFile: filepath.Join(dir, "nope")})
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing PIN file: %v", err)
		}
	})
	t.Run("wrong", func(t *testing.T) {
		_, err := hsm.Open(bg, hsm.Config{ModulePath: tok.Env.ModulePath, TokenLabel: tok.Label, PIN: "wrong-pin-0000"})
		if !hsm.IsCode(err, pkcs11.CKR_PIN_INCORRECT) {
			t.Fatalf("wrong PIN: %v", err)
		}
		if !bytes.Contains([]byte(err.Error()), []byte("wrong user PIN")) || bytes.Contains([]byte(err.Error()), []byte("wrong-pin-0000")) {
			t.Fatalf("wrong-PIN message: %q", err)
		}
	})
	t.Run("no-such-token", func(t *testing.T) {
		_, err := hsm.Open(bg, hsm.Config{ModulePath: tok.Env.ModulePath, TokenLabel: "absent", PIN: "x"})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(`no token matches token=absent in module `)) {
			t.Fatalf("absent token: %v", err)
		}
	})
	t.Run("config-redacts-pin", func(t *testing.T) {
		c := hsm.Config{ModulePath: "/m", TokenLabel: "x", PIN: "secret-pin-123"}
		for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
			if bytes.Contains([]byte(s), []byte("secret-pin-123")) {
				t.Fatalf("PIN printed: %s", s)
			}
		}
	})
}

func TestParseURIErrors(t *testing.T) {
	for _, uri := range []string{
		"notpkcs11:token=x",
		"pkcs11:token=x?module-path=relative/lib.so",
		"pkcs11:token=x?pin-value=a&pin-source=file:/x",
		"pkcs11:slot-id=abc",
		"pkcs11:token=x?module-path=/nonexistent/lib.so",
		"pkcs11:token=x?pin-source=relative",
	} {
		if _, err := hsm.ParseURI(uri); err == nil {
			t.Errorf("ParseURI(%q) accepted", uri)
		}
	}
	c, err := hsm.ParseURI("pkcs11:token=kms?pin-source=env:KMS_PIN")
	if err != nil || c.TokenLabel != "kms" || c.PINEnv != "KMS_PIN" {
		t.Fatalf("%+v %v", c, err)
	}
	if err := c.Validate(); err == nil {
		t.Fatal("config without module validated")
	}
}

func TestDroppedSessionIsReplaced(t *testing.T) {
	tok := softhsmtest.New(t)
	var first pkcs11.SessionHandle
	if _, err := hsm.Do(bg, tok.Token, func(s *hsm.Session) (int, error) { first = s.Handle(); return 0, nil }); err != nil {
		t.Fatal(err)
	}
	// Close the pooled session behind the pool's back, through a second
	// context on the same (shared, initialised) module.
	raw := pkcs11.New(tok.Env.ModulePath)
	if err := raw.CloseSession(first); err != nil {
		t.Fatalf("closing behind the pool: %v", err)
	}
	calls := 0
	got, err := hsm.Do(bg, tok.Token, func(s *hsm.Session) (pkcs11.SessionHandle, error) {
		calls++
		_, err := tok.Token.Random(bg, 1) // a nested borrow works too
		if err != nil {
			return 0, err
		}
		return s.Handle(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.Random(bg, 16)
	if err != nil || len(b) != 16 {
		t.Fatalf("after replacement: %v", err)
	}
	_ = got
	_ = calls
	if tok.SessionsInUse() != 0 {
		t.Fatalf("sessions in use after Do: %d", tok.SessionsInUse())
	}
}

func TestDroppedSessionRetriedOnce(t *testing.T) {
	tok := softhsmtest.New(t)
	raw := pkcs11.New(tok.Env.ModulePath)
	// Borrow every session the pool has open (one), close it behind the pool's back.
	var h pkcs11.SessionHandle
	hsm.Do(bg, tok.Token, func(s *hsm.Session) (int, error) { h = s.Handle(); return 0, nil })
	if err := raw.CloseSession(h); err != nil {
		t.Fatal(err)
	}
	// The next GCM call meets the closed session, gets CKR_SESSION_HANDLE_INVALID,
	// and is retried on a fresh session without the caller seeing it.
	key, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: "k", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatalf("operation on a dropped session was not retried: %v", err)
	}
	n, _ := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "k")})
	if len(n) != 1 || n[0] != key {
		t.Fatalf("retry created %d keys", len(n))
	}
}

func TestCMKKeyAttributes(t *testing.T) {
	tok := softhsmtest.New(t)
	id := []byte("0123456789abcdef")
	h, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{ID: id, Label: "p11kms/k/v", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[uint]bool{pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_EXTRACTABLE: false,
		pkcs11.CKA_TOKEN: true, pkcs11.CKA_PRIVATE: true, pkcs11.CKA_ENCRYPT: true, pkcs11.CKA_DECRYPT: true,
		pkcs11.CKA_NEVER_EXTRACTABLE: true, pkcs11.CKA_ALWAYS_SENSITIVE: true} {
		got, err := tok.BoolAttribute(bg, h, typ)
		if err != nil || got != want {
			t.Errorf("attribute %#x = %v (%v), want %v", typ, got, err, want)
		}
	}
	if _, err := tok.Attributes(bg, h, pkcs11.CKA_VALUE); !hsm.IsCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	if n, err := tok.ULongAttribute(bg, h, pkcs11.CKA_VALUE_LEN); err != nil || n != 32 {
		t.Fatalf("CKA_VALUE_LEN %d %v", n, err)
	}
	byID, err := tok.FindSecretKeyByID(bg, id)
	if err != nil || byID != h {
		t.Fatalf("by ID: %v %v", byID, err)
	}
	byLabel, err := tok.FindSecretKeyByLabel(bg, "p11kms/k/v")
	if err != nil || byLabel != h {
		t.Fatalf("by label: %v %v", byLabel, err)
	}
	if _, err := tok.FindSecretKeyByID(bg, []byte("nope")); !errors.Is(err, hsm.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := tok.GenerateAESKey(bg, 100, hsm.SecretKeyOptions{}); err == nil {
		t.Fatal("100-bit AES key accepted")
	}
	// A session copy stays sensitive and non-extractable.
	c, err := tok.CopyToSession(bg, h)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tok.BoolAttribute(bg, c, pkcs11.CKA_TOKEN); v {
		t.Fatal("session copy is a token object")
	}
	if v, _ := tok.BoolAttribute(bg, c, pkcs11.CKA_EXTRACTABLE); v {
		t.Fatal("session copy extractable")
	}
	// Both decrypt each other's output.
	iv := make([]byte, 12)
	ct, err := tok.EncryptGCM(bg, h, iv, []byte("hello"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := tok.DecryptGCM(bg, c, iv, ct, []byte("aad"))
	if err != nil || string(pt) != "hello" {
		t.Fatalf("%q %v", pt, err)
	}
}

func TestGCM(t *testing.T) {
	tok := softhsmtest.New(t)
	k, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := tok.Random(bg, 12)
	aad := []byte("header-and-context")
	msg := []byte("thirty-two bytes of data key!!!!")
	ct, err := tok.EncryptGCM(bg, k, iv, msg, aad)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != len(msg)+16 {
		t.Fatalf("ciphertext length %d", len(ct))
	}
	pt, err := tok.DecryptGCM(bg, k, iv, ct, aad)
	if err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("round trip: %v", err)
	}
	for name, f := range map[string]func() ([]byte, error){
		"tag": func() ([]byte, error) {
			c := bytes.Clone(ct)
			c[len(c)-1] ^= 1
			return tok.DecryptGCM(bg, k, iv, c, aad)
		},
		"body":  func() ([]byte, error) { c := bytes.Clone(ct); c[0] ^= 1; return tok.DecryptGCM(bg, k, iv, c, aad) },
		"aad":   func() ([]byte, error) { return tok.DecryptGCM(bg, k, iv, ct, []byte("other")) },
		"iv":    func() ([]byte, error) { v := bytes.Clone(iv); v[0] ^= 1; return tok.DecryptGCM(bg, k, v, ct, aad) },
		"short": func() ([]byte, error) { return tok.DecryptGCM(bg, k, iv, ct[:16], aad) },
	} {
		if _, err := f(); !errors.Is(err, hsm.ErrDecryption) {
			t.Errorf("%s tamper: %v, want ErrDecryption", name, err)
		}
	}
	// The session used for a failed decryption is still usable.
	if _, err := tok.DecryptGCM(bg, k, iv, ct, aad); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.EncryptGCM(bg, k, iv[:8], msg, aad); err == nil {
		t.Fatal("8-byte IV accepted")
	}
	if _, err := tok.EncryptGCM(bg, k, iv, msg, nil); err == nil {
		t.Fatal("empty AAD accepted")
	}
}

func TestDataObjects(t *testing.T) {
	tok := softhsmtest.New(t)
	const app = "p11kms-test"
	d1, err := tok.CreateData(bg, app, "key-1", []byte(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.CreateData(bg, app, "key-1", []byte(`{"v":9}`)); !errors.Is(err, hsm.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	d2, err := tok.ReplaceData(bg, d1, []byte(`{"v":2}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tok.FindData(bg, app, "key-1")
	if err != nil || string(got.Value) != `{"v":2}` || got.Generation != 2 {
		t.Fatalf("after replace: %+v %v", got, err)
	}
	// Exactly one object remains: the old one was destroyed.
	hs, _ := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, app)})
	if len(hs) != 1 {
		t.Fatalf("%d data objects after replace", len(hs))
	}
	// A writer holding the stale version loses and leaves nothing behind.
	if _, err := tok.ReplaceData(bg, d1, []byte(`{"v":"stale"}`)); !errors.Is(err, hsm.ErrConflict) {
		t.Fatalf("stale replace: %v", err)
	}
	hs, _ = tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, app)})
	if len(hs) != 1 {
		t.Fatalf("%d data objects after a lost replace", len(hs))
	}
	_ = d2
	if _, err := tok.CreateData(bg, app, "key-0", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	list, err := tok.ListData(bg, app)
	if err != nil || len(list) != 2 || list[0].Label != "key-0" || list[1].Label != "key-1" {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := tok.DestroyData(bg, app, "key-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.FindData(bg, app, "key-0"); !errors.Is(err, hsm.ErrNotFound) {
		t.Fatalf("after destroy: %v", err)
	}
}

// A crash between creating the new generation and destroying the old leaves
// both; readers see the newer one, never none.
func TestDataObjectCrashWindow(t *testing.T) {
	tok := softhsmtest.New(t)
	const app = "p11kms-crash"
	d1, err := tok.CreateData(bg, app, "k", []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	// Simulate the crash: keep a copy of the old object, replace, then restore the old one.
	d2, err := tok.ReplaceData(bg, d1, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	_ = d2
	old, err := tok.CreateData(bg, app+"-tmp", "k", []byte("x")) // prove creation works under the lock
	if err != nil || old == nil {
		t.Fatal(err)
	}
	// Re-create generation 1 beside generation 2, as an interrupted replace leaves it.
	raw := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true), pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, app),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "k"),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7}, "old"...)),
	}
	if _, err := hsm.Do(bg, tok.Token, func(s *hsm.Session) (pkcs11.ObjectHandle, error) {
		return pkcs11.New(tok.Env.ModulePath).CreateObject(s.Handle(), raw)
	}); err != nil {
		t.Fatal(err)
	}
	got, err := tok.FindData(bg, app, "k")
	if err != nil || string(got.Value) != "new" {
		t.Fatalf("with both generations present: %q %v", got.Value, err)
	}
	// The next replace cleans up every older generation.
	if _, err := tok.ReplaceData(bg, got, []byte("newer")); err != nil {
		t.Fatal(err)
	}
	hs, _ := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, app)})
	if len(hs) != 1 {
		t.Fatalf("%d objects after cleanup", len(hs))
	}
}

func TestDataObjectConcurrentReplaceLosesNothing(t *testing.T) {
	tok := softhsmtest.New(t)
	const app = "p11kms-race"
	if _, err := tok.CreateData(bg, app, "counter", []byte("0")); err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 5
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for {
					cur, err := tok.FindData(bg, app, "counter")
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					fmt.Sscan(string(cur.Value), &n)
					_, err = tok.ReplaceData(bg, cur, []byte(fmt.Sprint(n+1)))
					if errors.Is(err, hsm.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	got, err := tok.FindData(bg, app, "counter")
	if err != nil || string(got.Value) != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %q (%v), want %d: an update was lost", got.Value, err, workers*each)
	}
}

func TestRSAKeyPairsAndUnwrap(t *testing.T) {
	tok := softhsmtest.New(t)
	kp, err := tok.GenerateKeyPair(bg, hsm.KeyPairOptions{Type: hsm.RSA, Bits: 2048, Label: "wrap-rsa"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tok.BoolAttribute(bg, kp.Private, pkcs11.CKA_EXTRACTABLE); v {
		t.Fatal("private key extractable")
	}
	if v, _ := tok.BoolAttribute(bg, kp.Private, pkcs11.CKA_SENSITIVE); !v {
		t.Fatal("private key not sensitive")
	}
	pub, err := tok.PublicKey(bg, kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	rpub := pub.(*rsa.PublicKey)
	if rpub.N.BitLen() != 2048 || rpub.E != 65537 {
		t.Fatalf("public key %d bits e=%d", rpub.N.BitLen(), rpub.E)
	}
	found, err := tok.FindKeyPair(bg, "wrap-rsa")
	if err != nil || found != kp {
		t.Fatalf("find pair: %v %v", found, err)
	}

	// The capability probe: SoftHSM2 2.6.1 refuses OAEP with SHA-256, accepts SHA-1.
	ok256, err := tok.SupportsRSA(bg, kp, hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	ok1, err := tok.SupportsRSA(bg, kp, hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA1})
	if err != nil || !ok1 {
		t.Fatalf("OAEP-SHA-1 supported = %v %v", ok1, err)
	}
	t.Logf("token supports OAEP-SHA-256: %v", ok256)
	if ok256 {
		t.Fatal("SoftHSM2 2.6.1 was expected to refuse OAEP-SHA-256 (CKR_ARGUMENTS_BAD)")
	}

	key := make([]byte, 32)
	rand.Read(key)
	// OAEP-SHA-1 unwrap.
	ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, rpub, key, nil)
	h, err := tok.UnwrapRSA(bg, kp.Private, hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA1}, ct, pkcs11.CKK_AES, 32,
		hsm.SecretKeyOptions{Label: "imported", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tok.BoolAttribute(bg, h, pkcs11.CKA_EXTRACTABLE); v {
		t.Fatal("unwrapped key extractable")
	}
	if _, err := tok.Attributes(bg, h, pkcs11.CKA_VALUE); !hsm.IsCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("unwrapped CKA_VALUE readable: %v", err)
	}
	assertSameAESKey(t, tok.Token, h, key)

	// PKCS#1 v1.5 unwrap.
	ct15, _ := rsa.EncryptPKCS1v15(rand.Reader, rpub, key)
	h15, err := tok.UnwrapRSA(bg, kp.Private, hsm.RSAMechanism{Kind: hsm.RSAPKCS1v15}, ct15, pkcs11.CKK_AES, 32, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt})
	if err != nil {
		t.Fatal(err)
	}
	assertSameAESKey(t, tok.Token, h15, key)

	// OAEP-SHA-256 unwrap is refused as unsupported, leaving nothing.
	before, _ := tok.CountObjects(bg)
	ct256, _ := rsa.EncryptOAEP(crypto.SHA256.New(), rand.Reader, rpub, key, nil)
	if _, err := tok.UnwrapRSA(bg, kp.Private, hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA256}, ct256, pkcs11.CKK_AES, 32, hsm.SecretKeyOptions{Label: "x"}); !errors.Is(err, hsm.ErrMechanismUnsupported) {
		t.Fatalf("OAEP-SHA-256 unwrap: %v", err)
	}
	// Tampered and wrong-length inputs: one error, nothing created.
	bad := bytes.Clone(ct)
	bad[10] ^= 1
	if _, err := tok.UnwrapRSA(bg, kp.Private, hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA1}, bad, pkcs11.CKK_AES, 32, hsm.SecretKeyOptions{Label: "bad"}); !errors.Is(err, hsm.ErrDecryption) {
		t.Fatalf("tampered: %v", err)
	}
	// SoftHSM 2.6.1 unwraps an empty or 20-byte plaintext into an "AES key"
	// and reports CKA_VALUE_LEN 0: the in-token KCV refuses such a key.
	for _, n := range []int{0, 20} {
		odd, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, rpub, make([]byte, n), nil)
		h, err := tok.UnwrapRSA(bg, kp.Private, hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA1}, odd, pkcs11.CKK_AES, 32, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt})
		if err == nil {
			if _, err = tok.KCV(bg, h); err == nil {
				t.Fatalf("a %d-byte plaintext became a usable AES key", n)
			}
			tok.DestroyObject(bg, h)
		}
		if !errors.Is(err, hsm.ErrDecryption) {
			t.Fatalf("%d-byte plaintext: %v", n, err)
		}
	}
	if kcv, err := tok.KCV(bg, h); err != nil || len(kcv) != 3 {
		t.Fatalf("KCV: %x %v", kcv, err)
	}
	if after, _ := tok.CountObjects(bg); after != before {
		t.Fatalf("failed unwraps left %d objects", after-before)
	}

	// Raw RSA decryption returns m = c^d mod n.
	rawOut, err := tok.DecryptRSA(bg, kp.Private, hsm.RSAMechanism{Kind: hsm.RSARaw}, ct)
	if err != nil {
		t.Fatal(err)
	}
	c := new(big.Int).SetBytes(ct)
	m := new(big.Int).SetBytes(rawOut)
	if new(big.Int).Exp(m, big.NewInt(int64(rpub.E)), rpub.N).Cmp(c) != 0 {
		t.Fatal("raw RSA output is not c^d mod n")
	}
	if len(rawOut) != 256 || rawOut[0] != 0 {
		t.Fatalf("raw block of %d bytes starting %x", len(rawOut), rawOut[0])
	}
}

func TestRSAKeySizes(t *testing.T) {
	tok := softhsmtest.New(t)
	for _, bits := range []int{3072, 4096} {
		kp, err := tok.GenerateKeyPair(bg, hsm.KeyPairOptions{Type: hsm.RSA, Bits: bits, Label: fmt.Sprint("rsa", bits), Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := tok.PublicKey(bg, kp.Public)
		if err != nil || pub.(*rsa.PublicKey).N.BitLen() != bits {
			t.Fatalf("%d: %v", bits, err)
		}
	}
	if _, err := tok.GenerateKeyPair(bg, hsm.KeyPairOptions{Type: hsm.RSA, Bits: 1024}); err == nil {
		t.Fatal("RSA-1024 accepted")
	}
}

// assertSameAESKey checks that the token key h equals key by encrypting in
// the token and decrypting in Go.
func assertSameAESKey(t *testing.T, tok *hsm.Token, h hsm.ObjectHandle, key []byte) {
	t.Helper()
	iv := make([]byte, 12)
	ct, err := tok.EncryptGCM(bg, h, iv, []byte("probe"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := goGCMOpen(key, iv, ct, []byte("aad"))
	if err != nil || string(pt) != "probe" {
		t.Fatalf("token key differs from the expected key: %v", err)
	}
}

// newSM2Pair generates an SM2 key pair in tok and returns it with its
// public key, checked to be on gmsm's SM2 curve.
func newSM2Pair(t *testing.T, tok *hsm.Token, ephemeral bool) (hsm.KeyPair, *ecdsa.PublicKey) {
	t.Helper()
	kp, err := tok.GenerateKeyPair(bg, hsm.KeyPairOptions{Type: hsm.SM2, Label: "wrap-sm2", Ephemeral: ephemeral})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := tok.PublicKey(bg, kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	epub := pub.(*ecdsa.PublicKey)
	if epub.Curve != sm2.P256() {
		t.Fatal("not on gmsm's SM2 curve")
	}
	return kp, epub
}

// deriveMatchesGo makes a peer's ephemeral key C1 = [k]G, has the token
// compute x([d]C1) and checks it against Go's x([k]P). It returns C1.
func deriveMatchesGo(t *testing.T, tok *hsm.Token, kp hsm.KeyPair, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	k, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c1 := append([]byte{4}, append(pad32(k.PublicKey.X), pad32(k.PublicKey.Y)...)...)
	x2, err := tok.DeriveECDH1(bg, kp.Private, c1, 32)
	if err != nil {
		t.Fatal(err)
	}
	wx, _ := sm2.P256().ScalarMult(pub.X, pub.Y, k.D.Bytes())
	if !bytes.Equal(x2, pad32(wx)) {
		t.Fatalf("token x2 %x != %x", x2, pad32(wx))
	}
	return c1
}

func TestSM2KeyPairAndECDH(t *testing.T) {
	tok := softhsmtest.New(t)
	kp, pub := newSM2Pair(t, tok.Token, false)
	if v, _ := tok.BoolAttribute(bg, kp.Private, pkcs11.CKA_DERIVE); !v {
		t.Fatal("SM2 private key cannot derive")
	}
	c1 := deriveMatchesGo(t, tok.Token, kp, pub)
	// No derived object is left behind.
	if hs, _ := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET)}); len(hs) != 0 {
		t.Fatalf("%d derived objects left", len(hs))
	}
	// A point not on the curve is refused by the token.
	bad := bytes.Clone(c1)
	bad[64] ^= 1
	if _, err := tok.DeriveECDH1(bg, kp.Private, bad, 32); err == nil {
		t.Fatal("derive with an off-curve point succeeded")
	}
}

func pad32(x *big.Int) []byte { return x.FillBytes(make([]byte, 32)) }

func TestCreateSecretKey(t *testing.T) {
	tok := softhsmtest.New(t)
	key := []byte("0123456789abcdef")
	h, err := tok.CreateSecretKey(bg, pkcs11.CKK_AES, key, hsm.SecretKeyOptions{Label: "created", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tok.BoolAttribute(bg, h, pkcs11.CKA_SENSITIVE); !v {
		t.Fatal("created key not sensitive")
	}
	assertSameAESKey(t, tok.Token, h, key)
	if _, err := tok.CreateSecretKey(bg, pkcs11.CKK_AES, key[:15], hsm.SecretKeyOptions{}); err == nil {
		t.Fatal("15-byte AES key accepted")
	}
}

func TestRandom(t *testing.T) {
	tok := softhsmtest.New(t)
	a, err := tok.Random(bg, 44)
	if err != nil || len(a) != 44 {
		t.Fatal(err)
	}
	b, _ := tok.Random(bg, 44)
	if bytes.Equal(a, b) {
		t.Fatal("RNG repeated itself")
	}
	big := make([]byte, 10000)
	if _, err := readFull(tok.RandomReader(bg), big); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Random(bg, 0); err == nil {
		t.Fatal("Random(0) accepted")
	}
}

func TestConcurrentRNGAndGCM(t *testing.T) {
	tok := softhsmtest.New(t)
	k, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, ops = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				r, err := tok.Random(bg, 44)
				if err != nil {
					errs <- err
					return
				}
				iv, msg := r[32:], r[:32]
				ct, err := tok.EncryptGCM(bg, k, iv, msg, []byte("aad"))
				if err != nil {
					errs <- err
					return
				}
				pt, err := tok.DecryptGCM(bg, k, iv, ct, []byte("aad"))
				if err != nil || !bytes.Equal(pt, msg) {
					errs <- fmt.Errorf("round trip: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if tok.SessionsInUse() != 0 || tok.PoolSize() < 1 {
		t.Fatalf("pool: %d in use of %d", tok.SessionsInUse(), tok.PoolSize())
	}
}

func TestPoolBoundAndWait(t *testing.T) {
	tok := softhsmtest.Create(t)
	cfg := tok.Config
	cfg.MaxSessions = 2
	cfg.PoolWait = 50 * 1e6 // 50 ms
	tk, err := hsm.Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	release := make(chan struct{})
	held := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hsm.Do(bg, tk, func(*hsm.Session) (int, error) { held <- struct{}{}; <-release; return 0, nil })
		}()
	}
	<-held
	<-held
	if _, err := tk.Random(bg, 1); err == nil || !bytes.Contains([]byte(err.Error()), []byte("no free session")) {
		t.Fatalf("third borrower with a full pool: %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := tk.Random(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	close(release)
	wg.Wait()
	if _, err := tk.Random(bg, 1); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameOperationAndCode(t *testing.T) {
	tok := softhsmtest.New(t)
	_, err := tok.Attributes(bg, 999999, pkcs11.CKA_LABEL)
	if !hsm.IsCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
		t.Fatalf("%v", err)
	}
	var he *hsm.Error
	if !errors.As(err, &he) || he.Op != "C_GetAttributeValue" {
		t.Fatalf("error %v does not name the operation", err)
	}
	wrapped := fmt.Errorf("outer: %w", err)
	if code, ok := hsm.CodeOf(wrapped); !ok || code != pkcs11.CKR_OBJECT_HANDLE_INVALID {
		t.Fatalf("CodeOf through wrapping: %x %v", code, ok)
	}
}

// privateOnlyModule forwards to the real SoftHSM2 module but, as an HSM
// whose policy forbids public objects, refuses a derive template with
// CKA_PRIVATE false; it counts the derives it sees.
type privateOnlyModule struct {
	hsm.Module
	refused, derives atomic.Int64
}

func (m *privateOnlyModule) DeriveKey(sh pkcs11.SessionHandle, mech []*pkcs11.Mechanism, base pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	m.derives.Add(1)
	for _, at := range a {
		if at.Type == pkcs11.CKA_PRIVATE && len(at.Value) == 1 && at.Value[0] == 0 {
			m.refused.Add(1)
			return 0, pkcs11.Error(pkcs11.CKR_TEMPLATE_INCONSISTENT)
		}
	}
	return m.Module.DeriveKey(sh, mech, base, a)
}

// DeriveECDH1 makes its short-lived derived secret public (cheaper in
// SoftHSM2), and on a token that refuses public objects falls back to a
// private one once and for all: same shared secret, nothing left behind.
func TestDeriveECDH1PublicSecretFallsBackToPrivate(t *testing.T) {
	for _, policy := range []string{"public allowed", "private only"} {
		t.Run(policy, func(t *testing.T) {
			ref := softhsmtest.Create(t)
			cfg := ref.Config
			m := &privateOnlyModule{}
			if policy == "private only" {
				cfg.Wrap = func(inner hsm.Module) hsm.Module { m.Module = inner; return m }
			}
			tok, err := hsm.Open(bg, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer tok.Close()
			kp, pub := newSM2Pair(t, tok, true)
			for range 3 {
				deriveMatchesGo(t, tok, kp, pub)
			}
			if policy == "private only" && (m.refused.Load() != 1 || m.derives.Load() != 4) {
				t.Fatalf("%d refusals in %d derives: want the public template tried once (1 in 4)", m.refused.Load(), m.derives.Load())
			}
			if hs, _ := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET)}); len(hs) != 0 {
				t.Fatalf("%d derived objects left", len(hs))
			}
		})
	}
}
