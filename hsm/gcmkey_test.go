package hsm_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
)

// TestSealGCMMatchesGo seals in the token under a key whose value the test
// knows and checks the result with Go's crypto/cipher GCM, both ways: the
// IV comes from the token (12 bytes, fresh each call), the tag is 128 bits
// and covers the AAD.
func TestSealGCMMatchesGo(t *testing.T) {
	tok := softhsmtest.New(t)
	key := bytes.Repeat([]byte{0x42}, 32)
	h, err := tok.CreateSecretKey(bg, pkcs11.CKK_AES, key, hsm.SecretKeyOptions{Label: "known", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(b)
	msg, aad := []byte("Hello World!"), []byte("project=nile")
	s, err := tok.SealGCM(bg, h, msg, aad)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.IV) != 12 || len(s.Tag) != 16 || len(s.Ciphertext) != len(msg) {
		t.Fatalf("IV %d, tag %d, ciphertext %d bytes", len(s.IV), len(s.Tag), len(s.Ciphertext))
	}
	pt, err := g.Open(nil, s.IV, append(bytes.Clone(s.Ciphertext), s.Tag...), aad)
	if err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("Go cannot open the token's GCM output: %v", err)
	}
	iv := []byte("fixed-iv-12b")
	goSealed := g.Seal(nil, iv, msg, aad)
	n := len(goSealed) - 16
	pt, err = tok.OpenGCM(bg, h, hsm.Sealed{IV: iv, Ciphertext: goSealed[:n], Tag: goSealed[n:]}, aad)
	if err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("token cannot open Go's GCM output: %v", err)
	}
	s2, err := tok.SealGCM(bg, h, msg, aad)
	if err != nil || bytes.Equal(s2.IV, s.IV) {
		t.Fatalf("second IV %x equals the first (%v)", s2.IV, err)
	}
}

// TestOpenGCMRefusesTampering: a changed tag, AAD, IV or ciphertext, a
// short tag or an empty ciphertext is ErrDecryption, never a plaintext.
func TestOpenGCMRefusesTampering(t *testing.T) {
	tok := softhsmtest.New(t)
	h, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: "k", Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("aad")
	s, err := tok.SealGCM(bg, h, []byte("secret data"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) []byte { c := bytes.Clone(b); c[0] ^= 1; return c }
	cases := map[string]func() (hsm.Sealed, []byte){
		"tag": func() (hsm.Sealed, []byte) {
			return hsm.Sealed{IV: s.IV, Ciphertext: s.Ciphertext, Tag: flip(s.Tag)}, aad
		},
		"aad": func() (hsm.Sealed, []byte) { return s, []byte("aae") },
		"iv": func() (hsm.Sealed, []byte) {
			return hsm.Sealed{IV: flip(s.IV), Ciphertext: s.Ciphertext, Tag: s.Tag}, aad
		},
		"ciphertext": func() (hsm.Sealed, []byte) {
			return hsm.Sealed{IV: s.IV, Ciphertext: flip(s.Ciphertext), Tag: s.Tag}, aad
		},
		"short tag": func() (hsm.Sealed, []byte) {
			return hsm.Sealed{IV: s.IV, Ciphertext: s.Ciphertext, Tag: s.Tag[:12]}, aad
		},
		"empty": func() (hsm.Sealed, []byte) { return hsm.Sealed{IV: s.IV, Tag: s.Tag}, aad },
	}
	for name, c := range cases {
		in, a := c()
		if pt, err := tok.OpenGCM(bg, h, in, a); !errors.Is(err, hsm.ErrDecryption) || pt != nil {
			t.Errorf("%s: %q, %v; want ErrDecryption", name, pt, err)
		}
	}
	if pt, err := tok.OpenGCM(bg, h, s, aad); err != nil || string(pt) != "secret data" {
		t.Fatalf("untampered: %q %v", pt, err)
	}
}

// TestAESKeyByLabel reads a key's usage and refuses what XKS must not use:
// a key that is not AES-256, or one whose value can leave the token.
func TestAESKeyByLabel(t *testing.T) {
	tok := softhsmtest.New(t)
	for label, u := range map[string]hsm.Usage{"both": hsm.UsageEncrypt | hsm.UsageDecrypt, "enc": hsm.UsageEncrypt, "none": 0} {
		if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{ID: []byte("id-" + label), Label: label, Usage: u}); err != nil {
			t.Fatal(err)
		}
		k, err := tok.AESKeyByLabel(bg, label)
		if err != nil || k.Usage != u || k.Label != label || string(k.ID) != "id-"+label {
			t.Fatalf("%s: usage %b, want %b (%v)", label, k.Usage, u, err)
		}
	}
	if _, err := tok.GenerateAESKey(bg, 128, hsm.SecretKeyOptions{Label: "aes128", Usage: hsm.UsageEncrypt}); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.CreateSecretKey(bg, pkcs11.CKK_GENERIC_SECRET, make([]byte, 32), hsm.SecretKeyOptions{Label: "generic"}); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"aes128", "generic"} {
		if _, err := tok.AESKeyByLabel(bg, label); !errors.Is(err, hsm.ErrNotAES256) {
			t.Errorf("%s: %v, want ErrNotAES256", label, err)
		}
	}
	if _, err := tok.AESKeyByLabel(bg, "absent"); !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("absent: %v", err)
	}
	// An extractable key, made outside p11kms (which never makes one).
	out, err := exec.Command("pkcs11-tool", "--module", tok.ModulePath(), "--slot", fmt.Sprint(tok.SlotID()),
		"--login", "--pin", tok.PIN, "--keygen", "--key-type", "AES:32", "--label", "loose", "--extractable").CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	if _, err := tok.AESKeyByLabel(bg, "loose"); !errors.Is(err, hsm.ErrExtractable) {
		t.Errorf("extractable key: %v, want ErrExtractable", err)
	}
}
