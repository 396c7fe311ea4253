package wrap

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// spki builds a SubjectPublicKeyInfo from an algorithm OID, optional
// raw DER parameters, and key bytes.
func spki(t *testing.T, alg asn1.ObjectIdentifier, params []byte, key []byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(alg)
			b.AddBytes(params)
		})
		b.AddASN1BitString(key)
	})
	return b.BytesOrPanic()
}

func derOID(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err)
	}
	return b
}

var derNull = []byte{0x05, 0x00}

// pkcs1 builds an RSAPublicKey.
func pkcs1(n, e *big.Int) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(n)
		b.AddASN1BigInt(e)
	})
	return b.BytesOrPanic()
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestParsePublicKeyAccepts(t *testing.T) {
	rsa2048 := loadRSAKey(t, "rsa2048.pem")
	rsa3072 := loadRSAKey(t, "rsa3072.pem")
	rsa4096 := loadRSAKey(t, "rsa4096.pem")
	sm2Pub := pemBytes(t, "keys/sm2.pub.pem")
	sm2Key, err := ParsePublicKeyDER(sm2Pub, SpecSM2)
	if err != nil {
		t.Fatal(err)
	}
	point := sm2PointBytes(sm2Key.(*ecdsa.PublicKey))
	compressed := elliptic.MarshalCompressed(sm2.P256(), sm2Key.(*ecdsa.PublicKey).X, sm2Key.(*ecdsa.PublicKey).Y)

	for _, tc := range []struct {
		name string
		der  []byte
		spec KeySpec
		want any
	}{
		{"RSA-2048 SPKI (OpenSSL)", pemBytes(t, "keys/rsa2048.pub.pem"), SpecRSA2048, &rsa2048.PublicKey},
		{"RSA-2048 rsaEncryption without NULL", spki(t, oidRSAEncryption, nil, pkcs1(rsa2048.N, big.NewInt(65537))), SpecRSA2048, &rsa2048.PublicKey},
		{"RSA-3072", mustMarshal(t, &rsa3072.PublicKey), SpecRSA3072, &rsa3072.PublicKey},
		{"RSA-4096", mustMarshal(t, &rsa4096.PublicKey), SpecRSA4096, &rsa4096.PublicKey},
		{"SM2 id-ecPublicKey (OpenSSL)", sm2Pub, SpecSM2, sm2Key},
		{"SM2 algorithm OID, curve OID params", spki(t, oidSM2, derOID(oidSM2), point), SpecSM2, sm2Key},
		{"SM2 algorithm OID, no params", spki(t, oidSM2, nil, point), SpecSM2, sm2Key},
		{"SM2 algorithm OID, NULL params", spki(t, oidSM2, derNull, point), SpecSM2, sm2Key},
		{"SM2 compressed point", spki(t, oidECPublicKey, derOID(oidSM2), compressed), SpecSM2, sm2Key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, in := range []string{b64(tc.der), "\n " + b64(tc.der) + "\r\n"} {
				got, err := ParsePublicKeyBlob(in, tc.spec)
				if err != nil {
					t.Fatal(err)
				}
				if !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.want) {
					t.Errorf("parsed key differs from the expected key")
				}
				if k, ok := got.(*ecdsa.PublicKey); ok && k.Curve != sm2.P256() {
					t.Errorf("SM2 key curve is %v, want sm2.P256()", k.Curve.Params().Name)
				}
			}
			if _, err := ParsePublicKeyDER(tc.der, tc.spec); err != nil {
				t.Errorf("ParsePublicKeyDER: %v", err)
			}
			p := string(pemEncode("PUBLIC KEY", tc.der))
			if _, spec, err := ParsePublicKeyPEM(p); err != nil || spec != tc.spec {
				t.Errorf("ParsePublicKeyPEM: %v, %v", spec, err)
			}
		})
	}
}

func mustMarshal(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := MarshalPublicKeyDER(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParsePublicKeyRejects(t *testing.T) {
	rsa2048 := loadRSAKey(t, "rsa2048.pem")
	goodRSA := pemBytes(t, "keys/rsa2048.pub.pem")
	sm2Pub := pemBytes(t, "keys/sm2.pub.pem")
	sm2Key, _ := ParsePublicKeyDER(sm2Pub, SpecSM2)
	point := sm2PointBytes(sm2Key.(*ecdsa.PublicKey))
	offCurve := bytes.Clone(point)
	offCurve[64] ^= 1
	hybrid := bytes.Clone(point)
	hybrid[0] = 6
	p256OID := asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	unusedBits := spki(t, oidECPublicKey, derOID(oidSM2), point)
	unusedBits[len(unusedBits)-66] = 1 // the BIT STRING's unused-bits byte
	evenN := new(big.Int).SetBit(new(big.Int).Set(rsa2048.N), 0, 0)
	longForm := append([]byte{0x30, 0x82, 0x00, byte(len(sm2Pub) - 2)}, sm2Pub[2:]...)

	for _, tc := range []struct {
		name    string
		der     []byte
		spec    KeySpec
		wantMsg string
	}{
		{"RSA-1024", pemBytes(t, "keys/rsa1024.pub.pem"), SpecRSA2048, "public key: RSA modulus is 1024 bits; accepted: 2048, 3072, 4096"},
		{"RSA-2560", pemBytes(t, "keys/rsa2560.pub.pem"), SpecRSA2048, "RSA modulus is 2560 bits; accepted: 2048, 3072, 4096"},
		{"RSA e=3", pemBytes(t, "keys/rsa2048_e3.pub.pem"), SpecRSA2048, "RSA public exponent is 3; accepted: 65537"},
		{"RSA even modulus", spki(t, oidRSAEncryption, derNull, pkcs1(evenN, big.NewInt(65537))), SpecRSA2048, "RSA modulus is even"},
		{"RSA negative modulus", spki(t, oidRSAEncryption, derNull, pkcs1(new(big.Int).Neg(rsa2048.N), big.NewInt(65537))), SpecRSA2048, "RSA modulus is not a positive integer"},
		{"RSA-PSS", pemBytes(t, "keys/rsapss2048.pub.pem"), SpecRSA2048, "RSASSA-PSS"},
		{"rsaEncryption with OID params", spki(t, oidRSAEncryption, derOID(oidSM2), pkcs1(rsa2048.N, big.NewInt(65537))), SpecRSA2048, "parameters must be NULL or absent"},
		{"PKCS#1 trailing bytes", spki(t, oidRSAEncryption, derNull, append(pkcs1(rsa2048.N, big.NewInt(65537)), 0)), SpecRSA2048, "trailing bytes after the RSAPublicKey"},
		{"P-256", pemBytes(t, "keys/p256.pub.pem"), SpecSM2, "EC key is on curve P-256 (1.2.840.10045.3.1.7); accepted: SM2"},
		{"secp256k1", pemBytes(t, "keys/secp256k1.pub.pem"), SpecSM2, "secp256k1"},
		{"SM2 explicit params", pemBytes(t, "keys/sm2_explicit.pub.pem"), SpecSM2, "explicit curve parameters"},
		{"SM2 algorithm OID naming P-256", spki(t, oidSM2, derOID(p256OID), point), SpecSM2, "names curve P-256"},
		{"Ed25519", pemBytes(t, "keys/ed25519.pub.pem"), SpecSM2, "Ed25519 (1.3.101.112) is not accepted"},
		{"SM2 point off the curve", spki(t, oidECPublicKey, derOID(oidSM2), offCurve), SpecSM2, "SM2 point is not on the curve"},
		{"SM2 point (0,0)", spki(t, oidECPublicKey, derOID(oidSM2), append([]byte{4}, make([]byte, 64)...)), SpecSM2, "not on the curve"},
		{"SM2 point at infinity", spki(t, oidECPublicKey, derOID(oidSM2), []byte{0}), SpecSM2, "point at infinity"},
		{"SM2 hybrid point", spki(t, oidECPublicKey, derOID(oidSM2), hybrid), SpecSM2, "point format 0x06"},
		{"SM2 short point", spki(t, oidECPublicKey, derOID(oidSM2), point[:64]), SpecSM2, "64 bytes; want 65"},
		{"SM2 compressed x not on curve", spki(t, oidECPublicKey, derOID(oidSM2), append([]byte{2}, bytes.Repeat([]byte{0xff}, 32)...)), SpecSM2, "not on the curve"},
		{"BIT STRING unused bits", unusedBits, SpecSM2, "not a whole number of bytes"},
		{"trailing bytes", append(bytes.Clone(goodRSA), 0, 0), SpecRSA2048, "2 trailing bytes after the SubjectPublicKeyInfo"},
		{"BER long-form length", longForm, SpecSM2, "not a DER SubjectPublicKeyInfo"},
		{"not DER", []byte("hello"), SpecRSA2048, "not a DER SubjectPublicKeyInfo"},
		{"empty", nil, SpecRSA2048, "is empty"},
		{"spec mismatch RSA", goodRSA, SpecRSA3072, "key is RSA_2048 but the key spec is RSA_3072"},
		{"spec mismatch SM2", sm2Pub, SpecRSA2048, "key is EC_SM2 but the key spec is RSA_2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKeyBlob(b64(tc.der), tc.spec)
			if err == nil {
				t.Fatal("accepted")
			}
			wantParamError(t, err, FieldPublicKey, tc.wantMsg)
			_, err = ParsePublicKeyDER(tc.der, tc.spec)
			wantParamError(t, err, FieldPublicKey)
		})
	}

	t.Run("bad base64", func(t *testing.T) {
		_, err := ParsePublicKeyBlob("MIIB*", SpecRSA2048)
		wantParamError(t, err, FieldPublicKey, "not valid base64")
		_, err = ParsePublicKeyBlob(strings.TrimRight(b64(goodRSA), "="), SpecRSA2048)
		if len(b64(goodRSA))%4 != 0 || strings.HasSuffix(b64(goodRSA), "=") {
			wantParamError(t, err, FieldPublicKey, "not valid base64")
		}
		_, err = ParsePublicKeyBlob(" \n", SpecRSA2048)
		wantParamError(t, err, FieldPublicKey, "is empty")
		_, err = ParsePublicKeyBlob(strings.Repeat("A", maxPublicKeyInput+4), SpecRSA2048)
		wantParamError(t, err, FieldPublicKey, "at most")
	})
	t.Run("unknown spec", func(t *testing.T) {
		_, err := ParsePublicKeyBlob(b64(goodRSA), "RSA_1024")
		wantParamError(t, err, FieldKeySpec, `unknown key spec "RSA_1024"; valid: RSA_2048, RSA_3072, RSA_4096, EC_SM2`)
		_, err = ParsePublicKeyDER(goodRSA, "")
		wantParamError(t, err, FieldKeySpec)
	})
}

func pemEncode(typ string, der []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString("-----BEGIN " + typ + "-----\n")
	s := b64(der)
	for len(s) > 64 {
		buf.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	buf.WriteString(s + "\n-----END " + typ + "-----\n")
	return buf.Bytes()
}

func TestParsePublicKeyPEM(t *testing.T) {
	spkiPEM := string(readTestdata(t, "keys/rsa2048.pub.pem"))
	pkcs1PEM := string(readTestdata(t, "keys/rsa2048.pkcs1.pub.pem"))
	a, specA, err := ParsePublicKeyPEM(spkiPEM)
	if err != nil || specA != SpecRSA2048 {
		t.Fatalf("SPKI PEM: %v %v", specA, err)
	}
	b, specB, err := ParsePublicKeyPEM(pkcs1PEM)
	if err != nil || specB != SpecRSA2048 {
		t.Fatalf("PKCS#1 PEM: %v %v", specB, err)
	}
	if !a.(*rsa.PublicKey).Equal(b) {
		t.Error("SPKI and PKCS#1 forms of one key differ")
	}
	if _, spec, err := ParsePublicKeyPEM("\r\n  " + string(readTestdata(t, "keys/sm2.pub.pem")) + "\n\n"); err != nil || spec != SpecSM2 {
		t.Errorf("SM2 PEM with white space: %v %v", spec, err)
	}

	rsaDER := pemBytes(t, "keys/rsa2048.pub.pem")
	for _, tc := range []struct {
		name, text, wantMsg string
	}{
		{"empty", "  ", "is empty"},
		{"bare base64", b64(rsaDER), "is not PEM"},
		{"leading junk", "junk\n" + spkiPEM, "is not PEM"},
		{"trailing junk", spkiPEM + "junk", "data after the PEM block"},
		{"two keys", spkiPEM + spkiPEM, "data after the PEM block"},
		{"certificate", string(pemEncode("CERTIFICATE", rsaDER)), `PEM block type is "CERTIFICATE"`},
		{"private key", string(readTestdata(t, "keys/sm2.pem")), `PEM block type is "PRIVATE KEY"`},
		{"headers", strings.Replace(spkiPEM, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1), "headers"},
		{"broken PEM", "-----BEGIN PUBLIC KEY-----\nAAAA\n", "not a well-formed PEM block"},
		{"PKCS#1 under PUBLIC KEY", string(pemEncode("PUBLIC KEY", pemBytes(t, "keys/rsa2048.pkcs1.pub.pem"))), ""},
		{"SPKI under RSA PUBLIC KEY", string(pemEncode("RSA PUBLIC KEY", rsaDER)), ""},
		{"RSA-1024", string(readTestdata(t, "keys/rsa1024.pub.pem")), "RSA modulus is 1024 bits; accepted: 2048, 3072, 4096"},
		{"P-256", string(readTestdata(t, "keys/p256.pub.pem")), "P-256"},
		{"too long", strings.Repeat("x", maxPublicKeyInput+1), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParsePublicKeyPEM(tc.text)
			if err == nil {
				t.Fatal("accepted")
			}
			wantParamError(t, err, FieldPublicKey, tc.wantMsg)
		})
	}
}

func TestSpecOf(t *testing.T) {
	rsa2048 := loadRSAKey(t, "rsa2048.pem")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sm2Key, _ := sm2.GenerateKey(rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	offCurve := &ecdsa.PublicKey{Curve: sm2.P256(), X: big.NewInt(1), Y: big.NewInt(2)}
	e3 := &rsa.PublicKey{N: rsa2048.N, E: 3}

	if s, err := SpecOf(&rsa2048.PublicKey); err != nil || s != SpecRSA2048 {
		t.Errorf("RSA-2048: %v %v", s, err)
	}
	if s, err := SpecOf(&sm2Key.PublicKey); err != nil || s != SpecSM2 {
		t.Errorf("SM2: %v %v", s, err)
	}
	for name, pub := range map[string]any{
		"RSA-1024":      &small.PublicKey,
		"RSA e=3":       e3,
		"P-256":         &p256.PublicKey,
		"SM2 off curve": offCurve,
		"Ed25519":       edPub,
		"nil":           nil,
		"nil RSA":       (*rsa.PublicKey)(nil),
		"nil ECDSA":     (*ecdsa.PublicKey)(nil),
		"private key":   rsa2048,
	} {
		if _, err := SpecOf(pub); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			wantParamError(t, err, FieldPublicKey)
		}
		if _, err := MarshalPublicKeyDER(pub); err == nil {
			t.Errorf("%s: marshalled", name)
		}
	}
}

func TestMarshalPublicKey(t *testing.T) {
	// Our SM2 SubjectPublicKeyInfo is byte for byte what OpenSSL writes.
	sm2DER := pemBytes(t, "keys/sm2.pub.pem")
	pub, err := ParsePublicKeyDER(sm2DER, SpecSM2)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustMarshal(t, pub); !bytes.Equal(got, sm2DER) {
		t.Errorf("SM2 SPKI differs from OpenSSL's:\n got %x\nwant %x", got, sm2DER)
	}
	rsaDER := pemBytes(t, "keys/rsa2048.pub.pem")
	rpub, err := ParsePublicKeyDER(rsaDER, SpecRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustMarshal(t, rpub); !bytes.Equal(got, rsaDER) {
		t.Error("RSA SPKI differs from OpenSSL's")
	}
	text, err := MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if text != string(readTestdata(t, "keys/sm2.pub.pem")) {
		t.Errorf("SM2 PEM differs from OpenSSL's:\n%s", text)
	}
	if _, err := MarshalPublicKeyPEM(nil); err == nil {
		t.Error("nil key marshalled")
	}
}

func TestParseKeySpec(t *testing.T) {
	for _, s := range KeySpecs() {
		got, err := ParseKeySpec(string(s))
		if err != nil || got != s {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "rsa_2048", "RSA_1024", "EC_P256", "SM2"} {
		_, err := ParseKeySpec(bad)
		wantParamError(t, err, FieldKeySpec, "valid: RSA_2048, RSA_3072, RSA_4096, EC_SM2")
	}
	if SpecRSA3072.RSABits() != 3072 || SpecSM2.IsRSA() || !SpecRSA4096.IsRSA() {
		t.Error("spec helpers wrong")
	}
	var pe *ParamError
	if !errors.As(error(&ParamError{Msg: "x"}), &pe) || pe.Error() != "wrap: x" {
		t.Errorf("ParamError without Param: %q", pe.Error())
	}
}
