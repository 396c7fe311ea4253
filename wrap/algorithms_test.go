package wrap

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
)

func TestLookupAlgorithm(t *testing.T) {
	want := []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSAES_PKCS1_V1_5", "SM2PKE", "SM2", "SM2_C1C3C2_ASN1"}
	if got := Algorithms(); !slices.Equal(got, want) {
		t.Fatalf("Algorithms() = %v, want %v", got, want)
	}
	for _, name := range want {
		a, err := LookupAlgorithm(name)
		if err != nil || a.Name != name {
			t.Fatalf("%s: %v %v", name, a, err)
		}
	}
	check := func(name AlgorithmName, kind Kind, h crypto.Hash, enc SM2Encoding) {
		t.Helper()
		a := mustAlg(t, name)
		if a.Kind != kind || a.Hash != h || a.SM2Encoding != enc {
			t.Errorf("%s = %+v", name, a)
		}
	}
	check(AlgRSAOAEPSHA1, KindRSAOAEP, crypto.SHA1, 0)
	check(AlgRSAOAEPSHA256, KindRSAOAEP, crypto.SHA256, 0)
	check(AlgRSAPKCS1v15, KindRSAPKCS1, 0, 0)
	check(AlgSM2PKE, KindSM2, 0, SM2C1C3C2)
	check(AlgSM2, KindSM2, 0, SM2C1C3C2)
	check(AlgSM2ASN1, KindSM2, 0, SM2ASN1)
	if !mustAlg(t, AlgRSAPKCS1v15).Legacy || mustAlg(t, AlgRSAOAEPSHA256).Legacy {
		t.Error("Legacy flags wrong")
	}

	for _, bad := range []string{"", "rsaes_oaep_sha_256", "RSAES_OAEP_SHA_512", "SM2_C1C2C3", "SM2PKE "} {
		_, err := LookupAlgorithm(bad)
		wantParamError(t, err, FieldAlgorithm, "valid: RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSAES_PKCS1_V1_5, SM2PKE, SM2, SM2_C1C3C2_ASN1")
	}
	// The table cannot be changed through a returned value.
	a := mustAlg(t, AlgSM2ASN1)
	a.SM2Encoding = SM2C1C3C2
	if mustAlg(t, AlgSM2ASN1).SM2Encoding != SM2ASN1 {
		t.Error("LookupAlgorithm returned a pointer into the table")
	}
	if KindSM2.String() != "SM2" || SM2ASN1.String() == "" || Kind(0).String() != "Kind(0)" || SM2Encoding(0).String() != "SM2Encoding(0)" {
		t.Error("String methods")
	}
}

func TestCompatibleWith(t *testing.T) {
	for _, name := range Algorithms() {
		a, _ := LookupAlgorithm(name)
		for _, spec := range KeySpecs() {
			err := a.CompatibleWith(spec)
			want := (a.Kind == KindSM2) == (spec == SpecSM2)
			if (err == nil) != want {
				t.Errorf("%s with %s: %v", name, spec, err)
			}
			if err != nil {
				wantParamError(t, err, FieldAlgorithm, name, string(spec))
			}
		}
		wantParamError(t, a.CompatibleWith("RSA_1024"), FieldKeySpec)
	}
	bogus := &Algorithm{Name: "X"}
	if bogus.CompatibleWith(SpecRSA2048) == nil {
		t.Error("algorithm outside the table is compatible")
	}
}

func TestMaxPlaintext(t *testing.T) {
	rsa2048 := &loadRSAKey(t, "rsa2048.pem").PublicKey
	rsa3072 := &loadRSAKey(t, "rsa3072.pem").PublicKey
	rsa4096 := &loadRSAKey(t, "rsa4096.pem").PublicKey
	sm2Key, _ := sm2.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		alg  AlgorithmName
		pub  crypto.PublicKey
		want int
	}{
		{AlgRSAOAEPSHA256, rsa2048, 190},
		{AlgRSAOAEPSHA1, rsa2048, 214},
		{AlgRSAPKCS1v15, rsa2048, 245},
		{AlgRSAOAEPSHA256, rsa3072, 318},
		{AlgRSAOAEPSHA256, rsa4096, 446},
		{AlgSM2PKE, &sm2Key.PublicKey, MaxSM2Plaintext},
		{AlgSM2PKE, rsa2048, 0},
		{AlgRSAOAEPSHA1, &sm2Key.PublicKey, 0},
		{AlgRSAOAEPSHA1, nil, 0},
	} {
		if got := mustAlg(t, tc.alg).MaxPlaintext(tc.pub); got != tc.want {
			t.Errorf("%s: MaxPlaintext = %d, want %d", tc.alg, got, tc.want)
		}
	}
}

// TestEncryptDecryptRoundTrip: every algorithm, every key size, shortest
// and longest plaintext, through the software receiver.
func TestEncryptDecryptRoundTrip(t *testing.T) {
	keys := map[KeySpec]crypto.Signer{
		SpecRSA2048: loadRSAKey(t, "rsa2048.pem"),
		SpecRSA3072: loadRSAKey(t, "rsa3072.pem"),
		SpecRSA4096: loadRSAKey(t, "rsa4096.pem"),
	}
	sm2Key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys[SpecSM2] = sm2Key
	for _, name := range Algorithms() {
		a, _ := LookupAlgorithm(name)
		for _, spec := range KeySpecs() {
			if a.CompatibleWith(spec) != nil {
				continue
			}
			priv := keys[spec]
			pub := priv.Public()
			max := a.MaxPlaintext(pub)
			for _, n := range []int{1, 16, 32, max} {
				pt := bytes.Repeat([]byte{byte(n)}, n)
				ct, err := a.Encrypt(rand.Reader, pub, pt)
				if err != nil {
					t.Fatalf("%s/%s/%d: %v", name, spec, n, err)
				}
				switch {
				case spec.IsRSA() && len(ct) != spec.RSABits()/8:
					t.Errorf("%s/%s: ciphertext is %d bytes", name, spec, len(ct))
				case a.SM2Encoding == SM2C1C3C2 && (len(ct) != 97+n || ct[0] != 4):
					t.Errorf("%s: C1C3C2 ciphertext is %d bytes, first byte %x", name, len(ct), ct[0])
				case a.SM2Encoding == SM2ASN1 && ct[0] != 0x30:
					t.Errorf("%s: ASN.1 ciphertext starts with %x", name, ct[0])
				}
				got, err := a.Decrypt(priv, ct)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s/%s/%d: decrypt: %v", name, spec, n, err)
				}
				ct[len(ct)-1] ^= 1
				if _, err := a.Decrypt(priv, ct); err != ErrDecryption {
					t.Errorf("%s/%s: tampered ciphertext: %v", name, spec, err)
				}
			}
			// One byte too many.
			_, err := a.Encrypt(rand.Reader, pub, make([]byte, max+1))
			wantParamError(t, err, FieldPlaintext, "at most")
		}
	}
}

func TestEncryptRefuses(t *testing.T) {
	rsa2048 := loadRSAKey(t, "rsa2048.pem")
	sm2Key, _ := sm2.GenerateKey(rand.Reader)
	oaep := mustAlg(t, AlgRSAOAEPSHA256)

	_, err := oaep.Encrypt(rand.Reader, &rsa2048.PublicKey, make([]byte, 191))
	wantParamError(t, err, FieldPlaintext, "RSAES_OAEP_SHA_256 with an RSA_2048 key carries at most 190 bytes; got 191")
	if _, err := oaep.Encrypt(rand.Reader, &rsa2048.PublicKey, make([]byte, 190)); err != nil {
		t.Errorf("190 bytes: %v", err)
	}
	for _, name := range Algorithms() {
		a, _ := LookupAlgorithm(name)
		pub := crypto.PublicKey(&rsa2048.PublicKey)
		if a.Kind == KindSM2 {
			pub = &sm2Key.PublicKey
		}
		_, err := a.Encrypt(rand.Reader, pub, nil)
		wantParamError(t, err, FieldPlaintext, "is empty")
	}
	_, err = oaep.Encrypt(rand.Reader, &sm2Key.PublicKey, []byte{1})
	wantParamError(t, err, FieldAlgorithm, "needs an RSA key")
	_, err = mustAlg(t, AlgSM2).Encrypt(rand.Reader, &rsa2048.PublicKey, []byte{1})
	wantParamError(t, err, FieldAlgorithm, "needs an EC_SM2 key")
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, err = oaep.Encrypt(rand.Reader, &small.PublicKey, []byte{1})
	wantParamError(t, err, FieldPublicKey, "1024 bits")
	if _, err := (&Algorithm{Name: "X"}).Encrypt(rand.Reader, &rsa2048.PublicKey, []byte{1}); err == nil {
		t.Error("algorithm outside the table encrypted")
	}
	// nil rand means crypto/rand.
	ct, err := mustAlg(t, AlgSM2).Encrypt(nil, &sm2Key.PublicKey, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := mustAlg(t, AlgSM2).Decrypt(sm2Key, ct); err != nil || string(got) != "k" {
		t.Errorf("nil rand: %q %v", got, err)
	}
	// A failing reader is reported, not ignored (SM2 reads it).
	if _, err := mustAlg(t, AlgSM2).Encrypt(&fixedReader{}, &sm2Key.PublicKey, []byte("k")); err == nil {
		t.Error("SM2 encryption with an exhausted reader succeeded")
	}
}

func TestDecryptRefuses(t *testing.T) {
	rsa2048 := loadRSAKey(t, "rsa2048.pem")
	sm2Key, _ := sm2.GenerateKey(rand.Reader)
	other, _ := sm2.GenerateKey(rand.Reader)
	oaep := mustAlg(t, AlgRSAOAEPSHA256)
	sm2Alg := mustAlg(t, AlgSM2PKE)

	// Wrong key type: ErrDecryption, with a reason.
	for _, tc := range []struct {
		a    *Algorithm
		priv crypto.PrivateKey
	}{{oaep, sm2Key}, {oaep, nil}, {sm2Alg, rsa2048}, {sm2Alg, (*sm2.PrivateKey)(nil)}} {
		_, err := tc.a.Decrypt(tc.priv, []byte{1})
		if !errors.Is(err, ErrDecryption) || !strings.Contains(err.Error(), "needs") {
			t.Errorf("%s with %T: %v", tc.a.Name, tc.priv, err)
		}
	}
	// An *ecdsa.PrivateKey on the SM2 curve is accepted.
	ct, _ := sm2Alg.Encrypt(rand.Reader, &sm2Key.PublicKey, []byte("key"))
	if got, err := sm2Alg.Decrypt(&sm2Key.PrivateKey, ct); err != nil || string(got) != "key" {
		t.Errorf("ecdsa.PrivateKey: %q %v", got, err)
	}
	// Wrong private key, garbage, empty: exactly ErrDecryption.
	for name, tc := range map[string]struct {
		a    *Algorithm
		priv crypto.PrivateKey
		ct   []byte
	}{
		"SM2 wrong key":     {sm2Alg, other, ct},
		"SM2 empty":         {sm2Alg, sm2Key, nil},
		"SM2 only C1C3":     {sm2Alg, sm2Key, ct[:97]},
		"OAEP empty":        {oaep, rsa2048, nil},
		"OAEP short":        {oaep, rsa2048, make([]byte, 255)},
		"OAEP zero":         {oaep, rsa2048, make([]byte, 256)},
		"OAEP ≥ n":          {oaep, rsa2048, bytes.Repeat([]byte{0xff}, 256)},
		"PKCS1 zero":        {mustAlg(t, AlgRSAPKCS1v15), rsa2048, make([]byte, 256)},
		"outside the table": {&Algorithm{Name: "X"}, rsa2048, ct},
	} {
		_, err := tc.a.Decrypt(tc.priv, tc.ct)
		if !errors.Is(err, ErrDecryption) {
			t.Errorf("%s: %v", name, err)
		}
		if name != "outside the table" && err != ErrDecryption {
			t.Errorf("%s: error %q is not exactly ErrDecryption", name, err)
		}
	}
}

func TestDecodeOAEPPaddingAndErrors(t *testing.T) {
	priv := loadRSAKey(t, "rsa2048.pem")
	k := priv.Size()
	// Find a ciphertext whose raw decryption starts with two zero bytes
	// (Y = 0 and maskedSeed[0] = 0, about 1 in 256), then give DecodeOAEP
	// the em with its leading zeros stripped, as some tokens return it.
	msg := []byte("sixteen byte key")
	for i := 0; ; i++ {
		if i > 5000 {
			t.Fatal("no ciphertext with a short em found")
		}
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		em := rawDecrypt(priv, ct)
		if em[1] != 0 {
			continue
		}
		for _, trimmed := range [][]byte{em, em[1:], em[2:]} {
			got, err := DecodeOAEP(crypto.SHA256, trimmed, k, nil)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("em of %d bytes: %q %v", len(trimmed), got, err)
			}
		}
		// Too long: refused.
		if _, err := DecodeOAEP(crypto.SHA256, append([]byte{0}, em...), k, nil); err != ErrDecryption {
			t.Errorf("em longer than k: %v", err)
		}
		// Wrong label: refused.
		if _, err := DecodeOAEP(crypto.SHA256, em, k, []byte("L")); err != ErrDecryption {
			t.Errorf("wrong label: %v", err)
		}
		// Wrong hash: refused.
		if _, err := DecodeOAEP(crypto.SHA1, em, k, nil); err != ErrDecryption {
			t.Errorf("wrong hash: %v", err)
		}
		break
	}
	if _, err := DecodeOAEP(crypto.SHA256, make([]byte, 10), 2*32+1, nil); err != ErrDecryption {
		t.Errorf("k too small: %v", err)
	}
	if _, err := DecodeOAEP(crypto.Hash(0), make([]byte, 256), 256, nil); !errors.Is(err, ErrDecryption) {
		t.Errorf("unavailable hash: %v", err)
	}
	if _, err := DecodePKCS1v15(make([]byte, 10), 10); err != ErrDecryption {
		t.Errorf("PKCS#1 k too small: %v", err)
	}
	if _, err := DecodePKCS1v15(make([]byte, 257), 256); err != ErrDecryption {
		t.Errorf("PKCS#1 em too long: %v", err)
	}
	// PKCS#1 v1.5: a hand-built em with exactly 8 padding bytes decodes,
	// 7 does not, and leading zeros may be stripped.
	for ps, want := range map[int]bool{8: true, 7: false} {
		em := make([]byte, 256)
		em[1] = 2
		for i := 2; i < 2+ps; i++ {
			em[i] = 0xAA
		}
		copy(em[2+ps+1:], bytes.Repeat([]byte{7}, 256-3-ps))
		got, err := DecodePKCS1v15(em[1:], 256)
		if (err == nil) != want {
			t.Errorf("PS of %d bytes: %v", ps, err)
		}
		if want && len(got) != 256-3-ps {
			t.Errorf("PS of %d bytes: message is %d bytes", ps, len(got))
		}
	}
}

// rawDecrypt is c^d mod n as k bytes (test-only, variable time).
func rawDecrypt(priv *rsa.PrivateKey, ct []byte) []byte {
	c := new(big.Int).SetBytes(ct)
	return c.Exp(c, priv.D, priv.N).FillBytes(make([]byte, priv.Size()))
}
