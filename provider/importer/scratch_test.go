package importer

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/softhsm/softhsmtest"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

func TestScratch(t *testing.T) {
	bg := context.Background()
	tok := softhsmtest.New(t)
	kp, err := tok.GenerateKeyPair(bg, hsm.KeyPairOptions{Type: hsm.RSA, Bits: 2048, Label: "w"})
	if err != nil {
		t.Fatal(err)
	}
	pubk, _ := tok.PublicKey(bg, kp.Public)
	pub := pubk.(*rsa.PublicKey)
	key := make([]byte, 32)
	rand.Read(key)
	ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, key, nil)
	oaep1 := hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA1}
	h, err := tok.UnwrapRSA(bg, kp.Private, oaep1, ct, pkcs11.CKK_AES, 32, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt})
	t.Log("unwrap aes", h, err)
	a, err := tok.Attributes(bg, h, pkcs11.CKA_CHECK_VALUE)
	t.Logf("check value unwrapped: %x %v", a, err)
	g, _ := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt})
	a, err = tok.Attributes(bg, g, pkcs11.CKA_CHECK_VALUE)
	t.Logf("check value generated: %x %v", a, err)
	c, _ := tok.CreateSecretKey(bg, pkcs11.CKK_AES, key, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt})
	a, err = tok.Attributes(bg, c, pkcs11.CKA_CHECK_VALUE)
	t.Logf("check value created: %x %v", a, err)
	kcv, _ := tok.KCV(bg, c)
	t.Logf("kcv %x", kcv)
	cg, err := tok.CreateSecretKey(bg, pkcs11.CKK_GENERIC_SECRET, key[:20], hsm.SecretKeyOptions{Ephemeral: true})
	a, err = tok.Attributes(bg, cg, pkcs11.CKA_CHECK_VALUE, pkcs11.CKA_VALUE_LEN)
	t.Logf("check value generic created: %x %v", a, err)
	ct20, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, key[:20], nil)
	hg, err := tok.UnwrapRSA(bg, kp.Private, oaep1, ct20, pkcs11.CKK_GENERIC_SECRET, 20, hsm.SecretKeyOptions{Ephemeral: true})
	t.Log("unwrap generic with len", hg, err)
	if err == nil {
		a, err = tok.Attributes(bg, hg, pkcs11.CKA_CHECK_VALUE, pkcs11.CKA_VALUE_LEN)
		t.Logf("check value generic unwrapped: %x %v", a, err)
	}
	hg, err = tok.UnwrapRSA(bg, kp.Private, oaep1, ct20, pkcs11.CKK_GENERIC_SECRET, 32, hsm.SecretKeyOptions{Ephemeral: true})
	t.Log("unwrap generic with wrong len", hg, err)
	// copy
	cp, err := tok.CopyObject(bg, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, "final"),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte{1, 2, 3}), pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true), pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
	}, nil)
	t.Log("copy", cp, err)
	if err == nil {
		a, err = tok.Attributes(bg, cp, pkcs11.CKA_TOKEN, pkcs11.CKA_LABEL, pkcs11.CKA_DECRYPT, pkcs11.CKA_SIGN, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_CHECK_VALUE, pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_LOCAL, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE)
		t.Logf("copy attrs: %v %v", a, err)
		kcv, err := tok.KCV(bg, cp)
		t.Logf("kcv copy %x %v", kcv, err)
	}
	a, err = tok.Attributes(bg, h, pkcs11.CKA_LOCAL, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE)
	t.Logf("unwrapped attrs: %v %v", a, err)
	a, err = tok.Attributes(bg, c, pkcs11.CKA_LOCAL, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE)
	t.Logf("created attrs: %v %v", a, err)
	ms, _ := tok.Mechanisms()
	t.Logf("mechs %x", ms)
}
