package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/wrap"
)

// Malformed wrapped keys through `p11kms importer ImportDataKey`: OAEP and
// PKCS #1 v1.5 blocks with wrong padding, hashes or labels, ciphertexts
// out of range, keys of the wrong length; SM2 ciphertexts with C1 off the
// curve, at infinity or compressed, C3 or C2 altered, truncated; and bad
// parameters. Each ends with its code (exit 1) and imports nothing.
func TestCLIHostileImports(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	wrapping := func(spec, label string) string {
		t.Helper()
		out, errOut, code := cli(t, "importer", "CreateWrappingKey", "--WrappingKeySpec", spec, "--KeyLabel", label)
		if code != 0 {
			t.Fatalf("CreateWrappingKey %s: %s", spec, errOut)
		}
		return jsonOut(t, out)["PublicKeyBlob"].(string)
	}
	// Labels unique per run: the home (and its token) is shared by the
	// package's tests and by every run of -count.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	rsaLabel, sm2Label, dataKeyLabel := "hostile-rsa-"+run, "hostile-sm2-"+run, "hostile-"+run+"-"
	rsaBlob, sm2Blob := wrapping("RSA_2048", rsaLabel), wrapping("EC_SM2", sm2Label)
	t.Cleanup(func() {
		for _, label := range []string{rsaLabel, sm2Label} {
			if _, errOut, code := cli(t, "importer", "DeleteWrappingKey", "--KeyLabel", label); code != 0 {
				t.Errorf("DeleteWrappingKey %s: %s", label, errOut)
			}
		}
	})
	rsaPub, err := wrap.ParsePublicKeyBlob(rsaBlob, wrap.SpecRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := rsaPub.(*rsa.PublicKey)
	sm2Pub, err := wrap.ParsePublicKeyBlob(sm2Blob, wrap.SpecSM2)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	k := pub.Size()
	b64 := base64.StdEncoding.EncodeToString
	// raw is textbook RSA of an encoded block: the padding is the test's.
	raw := func(em []byte) string {
		c := new(big.Int).Exp(new(big.Int).SetBytes(em), big.NewInt(int64(pub.E)), pub.N)
		return b64(c.FillBytes(make([]byte, k)))
	}
	oaep := func(h func() []byte, label string, msg []byte) string {
		var ct []byte
		var err error
		if h == nil {
			ct, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, msg, []byte(label))
		} else {
			ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, msg, []byte(label))
		}
		if err != nil {
			t.Fatal(err)
		}
		return b64(ct)
	}
	pkcs1 := func(msg []byte) string {
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
		if err != nil {
			t.Fatal(err)
		}
		return b64(ct)
	}
	pkcs1Block := func(blockType byte, sep bool) []byte {
		em := make([]byte, k)
		em[1] = blockType
		for i := 2; i < k-len(key)-1; i++ {
			em[i] = 0xff
		}
		if !sep {
			em[k-len(key)-1] = 0xff
		}
		copy(em[k-len(key):], key)
		return em
	}
	oaepBadFirstByte := make([]byte, k)
	rand.Read(oaepBadFirstByte)
	oaepBadFirstByte[0] = 1
	sm2Alg, err := wrap.LookupAlgorithm("SM2PKE")
	if err != nil {
		t.Fatal(err)
	}
	sm2ct, err := sm2Alg.Encrypt(rand.Reader, sm2Pub, key) // C1 ‖ C3 ‖ C2
	if err != nil {
		t.Fatal(err)
	}
	sm2 := func(f func([]byte) []byte) string { return b64(f(append([]byte(nil), sm2ct...))) }
	asn1Alg, _ := wrap.LookupAlgorithm("SM2_C1C3C2_ASN1")
	der, err := asn1Alg.Encrypt(rand.Reader, sm2Pub, key)
	if err != nil {
		t.Fatal(err)
	}
	modulus := pub.N.FillBytes(make([]byte, k))

	const bad = "InvalidCiphertext"
	cases := []struct {
		name, label, alg, exported, want string
		extra                            []string
	}{
		{"OAEP first byte not zero", rsaLabel, "RSAES_OAEP_SHA_1", raw(oaepBadFirstByte), bad, nil},
		{"OAEP other label (lHash)", rsaLabel, "RSAES_OAEP_SHA_1", oaep(nil, "other", key), bad, nil},
		{"OAEP SHA-256 sent as SHA-1", rsaLabel, "RSAES_OAEP_SHA_1", oaep(func() []byte { return nil }, "", key), bad, nil},
		{"OAEP SHA-1 sent as SHA-256", rsaLabel, "RSAES_OAEP_SHA_256", oaep(nil, "", key), bad, []string{"--AllowHostDecode"}},
		{"PKCS#1 v1.5 sent as OAEP", rsaLabel, "RSAES_OAEP_SHA_1", pkcs1(key), bad, nil},
		{"OAEP sent as PKCS#1 v1.5", rsaLabel, "RSAES_PKCS1_V1_5", oaep(nil, "", key), bad, nil},
		{"PKCS#1 v1.5 block type 1", rsaLabel, "RSAES_PKCS1_V1_5", raw(pkcs1Block(1, true)), bad, nil},
		{"PKCS#1 v1.5 no separator", rsaLabel, "RSAES_PKCS1_V1_5", raw(pkcs1Block(2, false)), bad, nil},
		{"OAEP 5-byte key", rsaLabel, "RSAES_OAEP_SHA_1", oaep(nil, "", key[:5]), bad, nil},
		{"OAEP 33-byte key", rsaLabel, "RSAES_OAEP_SHA_1", oaep(nil, "", append(append([]byte(nil), key...), 1)), bad, nil},
		{"RSA ciphertext = modulus", rsaLabel, "RSAES_OAEP_SHA_1", b64(modulus), bad, nil},
		{"RSA ciphertext all 0xff", rsaLabel, "RSAES_OAEP_SHA_1", b64(bytesOf(0xff, k)), bad, nil},
		{"RSA ciphertext one byte short", rsaLabel, "RSAES_OAEP_SHA_1", b64(bytesOf(1, k-1)), bad, nil},
		{"RSA ciphertext one byte long", rsaLabel, "RSAES_OAEP_SHA_1", b64(bytesOf(1, k+1)), bad, nil},
		{"RSA ciphertext zero", rsaLabel, "RSAES_OAEP_SHA_1", b64(make([]byte, k)), bad, nil},
		{"SM2 C1 off the curve", sm2Label, "SM2PKE", sm2(func(b []byte) []byte { b[5] ^= 1; return b }), bad, nil},
		{"SM2 C1 at infinity (zero)", sm2Label, "SM2PKE", sm2(func(b []byte) []byte { clear(b[1:65]); return b }), bad, nil},
		{"SM2 C1 compressed", sm2Label, "SM2PKE", sm2(func(b []byte) []byte { b[0] = 2; return b }), bad, nil},
		{"SM2 C1 format byte 5", sm2Label, "SM2PKE", sm2(func(b []byte) []byte { b[0] = 5; return b }), bad, nil},
		{"SM2 C3 altered", sm2Label, "SM2PKE", sm2(func(b []byte) []byte { b[70] ^= 1; return b }), bad, nil},
		{"SM2 C2 altered", sm2Label, "SM2PKE", sm2(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), bad, nil},
		{"SM2 no C2", sm2Label, "SM2PKE", sm2(func(b []byte) []byte { return b[:97] }), bad, nil},
		{"SM2 C1C2C3 order", sm2Label, "SM2PKE", sm2(func(b []byte) []byte {
			return append(append(append([]byte(nil), b[:65]...), b[97:]...), b[65:97]...)
		}), bad, nil},
		{"SM2 ASN.1 trailing byte", sm2Label, "SM2_C1C3C2_ASN1", b64(append(append([]byte(nil), der...), 0)), bad, nil},
		{"SM2 ASN.1 truncated", sm2Label, "SM2_C1C3C2_ASN1", b64(der[:len(der)-3]), bad, nil},
		{"SM2 ASN.1 sent as SM2PKE", sm2Label, "SM2PKE", b64(der), bad, nil},
		{"SM2PKE sent as ASN.1", sm2Label, "SM2_C1C3C2_ASN1", b64(sm2ct), bad, nil},
		{"SM2 for the RSA key", rsaLabel, "SM2PKE", b64(sm2ct), "InvalidParameter", nil},
		{"RSA for the SM2 key", sm2Label, "RSAES_OAEP_SHA_1", oaep(nil, "", key), "InvalidParameter", nil},
		{"not base64", rsaLabel, "RSAES_OAEP_SHA_1", "%%%", "InvalidParameter", nil},
		{"KeyType DES", rsaLabel, "RSAES_OAEP_SHA_1", oaep(nil, "", key), "InvalidParameter", []string{"--KeyType", "DES"}},
		{"Usage unknown", rsaLabel, "RSAES_OAEP_SHA_1", oaep(nil, "", key), "InvalidParameter", []string{"--Usage", `["launch"]`}},
		{"ExpectedKeyCheckValue not hex", rsaLabel, "RSAES_OAEP_SHA_1", oaep(nil, "", key), "InvalidParameter", []string{"--ExpectedKeyCheckValue", "zzzzzz"}},
		{"ExpectedKeyCheckValue wrong", rsaLabel, "RSAES_OAEP_SHA_1", oaep(nil, "", key), "InvalidParameter", []string{"--ExpectedKeyCheckValue", "000000"}},
	}
	for i, c := range cases {
		args := append([]string{"importer", "ImportDataKey", "--WrappingKeyLabel", c.label, "--WrappingAlgorithm", c.alg,
			"--ExportedDataKey", c.exported, "--KeyLabel", dataKeyLabel + strings.Repeat("x", i)}, c.extra...)
		_, errOut, code := cli(t, args...)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", c.name, code, errOut)
			continue
		}
		if got, _ := jsonOut(t, errOut)["Code"].(string); got != c.want {
			t.Errorf("%s: code %q, want %q", c.name, got, c.want)
		}
	}
	// Nothing was imported under any of the labels.
	for i := range cases {
		_, errOut, code := cli(t, "importer", "DeleteKey", "--KeyLabel", dataKeyLabel+strings.Repeat("x", i))
		if got, _ := jsonOut(t, errOut)["Code"].(string); code != 1 || got != "Forbidden.KeyNotFound" {
			t.Errorf("%s left a key behind (DeleteKey: exit %d, %s)", cases[i].name, code, errOut)
		}
	}
	t.Logf("%d hostile imports refused", len(cases))
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
