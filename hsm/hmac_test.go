package hsm_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

// The HMAC key is made once, in the token, sensitive and not extractable;
// its tags verify in the token and a wrong tag does not.
func TestHMACKeyInToken(t *testing.T) {
	tok := softhsmtest.New(t)
	k, err := tok.HMACKey(bg, "p11kms/test-hmac")
	if err != nil {
		t.Fatal(err)
	}
	mac, err := k.Sign(bg, []byte("line 1"))
	if err != nil || len(mac) != hsm.HMACSize {
		t.Fatalf("sign: %x %v", mac, err)
	}
	again, err := tok.HMACKey(bg, "p11kms/test-hmac")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := again.Verify(bg, []byte("line 1"), mac); !ok || err != nil {
		t.Fatalf("verify own tag: %v %v", ok, err)
	}
	if ok, err := again.Verify(bg, []byte("line 2"), mac); ok || err != nil {
		t.Fatalf("verify other message: %v %v", ok, err)
	}
	if ok, err := again.Verify(bg, []byte("line 1"), mac[:31]); ok || err != nil {
		t.Fatalf("verify short tag: %v %v", ok, err)
	}
	hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "p11kms/test-hmac")})
	if err != nil || len(hs) != 1 {
		t.Fatalf("%d keys labelled p11kms/test-hmac (%v)", len(hs), err)
	}
	for typ, want := range map[uint]bool{pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_EXTRACTABLE: false, pkcs11.CKA_SIGN: true,
		pkcs11.CKA_VERIFY: true, pkcs11.CKA_ENCRYPT: false, pkcs11.CKA_TOKEN: true} {
		if got, err := tok.BoolAttribute(bg, hs[0], typ); err != nil || got != want {
			t.Errorf("attribute %#x: %v (%v), want %v", typ, got, err, want)
		}
	}
	if _, err := tok.Attributes(bg, hs[0], pkcs11.CKA_VALUE); !hsm.IsCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("CKA_VALUE readable: %v", err)
	}
	// A software key of the same size gives another tag: the tag depends
	// on the token's secret.
	soft := hmac.New(sha256.New, make([]byte, hsm.HMACKeyBytes))
	soft.Write([]byte("line 1"))
	if ok, _ := k.Verify(bg, []byte("line 1"), soft.Sum(nil)); ok {
		t.Fatal("a software tag verified")
	}
}

// The session copy gives the same tags, and when it is gone Sign falls
// back to the token object.
func TestHMACKeySessionCopy(t *testing.T) {
	tok := softhsmtest.New(t)
	k, err := tok.HMACKey(bg, "p11kms/copy")
	if err != nil {
		t.Fatal(err)
	}
	want, err := k.Sign(bg, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.UseSessionCopy(bg); err != nil {
		t.Fatal(err)
	}
	copies, err := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "p11kms/copy"), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)})
	if err != nil || len(copies) != 1 {
		t.Fatalf("%d session copies (%v)", len(copies), err)
	}
	if got, err := k.Sign(bg, []byte("m")); err != nil || !hmac.Equal(got, want) {
		t.Fatalf("session copy: %x %v", got, err)
	}
	if err := tok.DestroySessionObject(bg, copies[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Sign(bg, []byte("m")); err != nil || !hmac.Equal(got, want) {
		t.Fatalf("after the copy is gone: %x %v", got, err)
	}
	if ok, err := k.Verify(bg, []byte("m"), want); !ok || err != nil {
		t.Fatalf("verify: %v %v", ok, err)
	}
}

// Two tokens opened on the same token (as two processes would) asking for
// the key at once make one key.
func TestHMACKeyCreatedOnceUnderRace(t *testing.T) {
	st := softhsmtest.New(t)
	var toks []*hsm.Token
	for i := 0; i < 4; i++ {
		tok, err := hsm.Open(bg, st.Config)
		if err != nil {
			t.Fatal(err)
		}
		defer tok.Close()
		toks = append(toks, tok)
	}
	var wg sync.WaitGroup
	macs := make([][]byte, len(toks))
	for i, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := tok.HMACKey(bg, "p11kms/race")
			if err != nil {
				t.Error(err)
				return
			}
			macs[i], err = k.Sign(bg, []byte("m"))
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range macs {
		if !hmac.Equal(macs[i], macs[0]) {
			t.Fatalf("process %d signed with another key", i)
		}
	}
	hs, _ := st.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "p11kms/race")})
	if len(hs) != 1 {
		t.Fatalf("%d keys", len(hs))
	}
}

// BenchmarkHMACSign is the cost of one audit line's MAC (C_SignInit +
// C_Sign over a ~400-byte line).
func BenchmarkHMACSign(b *testing.B) {
	tok := softhsmtest.New(b)
	k, err := tok.HMACKey(bg, "p11kms/bench")
	if err != nil {
		b.Fatal(err)
	}
	line := make([]byte, 400)
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := k.Sign(bg, line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHMACSignSessionCopy is BenchmarkHMACSign with the key copied
// to a session object, as the audit log uses it.
func BenchmarkHMACSignSessionCopy(b *testing.B) {
	tok := softhsmtest.New(b)
	k, err := tok.HMACKey(bg, "p11kms/bench")
	if err != nil {
		b.Fatal(err)
	}
	if err := k.UseSessionCopy(bg); err != nil {
		b.Fatal(err)
	}
	line := make([]byte, 400)
	for b.Loop() {
		if _, err := k.Sign(bg, line); err != nil {
			b.Fatal(err)
		}
	}
}
