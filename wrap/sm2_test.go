package wrap

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
)

// gbtExample is testdata/wrap/sm2/gbt32918_4_encryption_example.json.
type gbtExample struct {
	D          string `json:"privateKey_d"`
	PubX       string `json:"publicKey_x"`
	PubY       string `json:"publicKey_y"`
	Message    string `json:"message_ascii"`
	K          string `json:"random_k"`
	C1         string `json:"C1_uncompressed"`
	C3         string `json:"C3"`
	C2         string `json:"C2"`
	Ciphertext string `json:"ciphertext_C1C3C2"`
}

// katFile is testdata/wrap/sm2/sm2_encryption_kat_with_rejections.json.
type katFile struct {
	Tests []struct {
		ID           string `json:"id"`
		PrivateKey   string `json:"privateKey"`
		Public       string `json:"publicKeyUncompressed"`
		K            string `json:"k"`
		Msg          string `json:"msg"`
		Intermediate *struct {
			X2 string `json:"x2"`
			Y2 string `json:"y2"`
			T  string `json:"t"`
		} `json:"intermediate"`
		CiphertextC1C3C2 string `json:"ciphertextC1C3C2"`
		CiphertextASN1   string `json:"ciphertextASN1"`
		TestCurveC1C3C2  string `json:"ciphertextC1C3C2_testcurve"`
		MustReject       []struct {
			Comment    string `json:"comment"`
			Encoding   string `json:"encoding"`
			Ciphertext string `json:"ciphertext"`
			Expected   string `json:"expected"`
		} `json:"mustReject"`
		ImplementationChoice []struct {
			Comment    string `json:"comment"`
			Encoding   string `json:"encoding"`
			Ciphertext string `json:"ciphertext"`
		} `json:"implementationChoice"`
	} `json:"tests"`
}

// fixedReader yields the given bytes, then fails: it makes SM2
// encryption use a chosen k (encryptSM2 reads exactly 32 bytes per draw
// with io.ReadFull, as gmsm does, and draws again only if k is 0 or
// ≥ n−1, or t is all zero).
type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("fixedReader: exhausted")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func mustAlg(t testing.TB, name AlgorithmName) *Algorithm {
	t.Helper()
	a, err := LookupAlgorithm(string(name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func gbtKey(t *testing.T) (*gbtExample, *sm2.PrivateKey) {
	var ex gbtExample
	readJSON(t, "sm2/gbt32918_4_encryption_example.json", &ex)
	priv := sm2KeyFromHex(t, ex.D)
	if got := strings.ToUpper(hex.EncodeToString(priv.PublicKey.X.FillBytes(make([]byte, 32)))); got != ex.PubX {
		t.Fatalf("d·G x = %s, want %s", got, ex.PubX)
	}
	return &ex, priv
}

// TestSM2GBTExampleDecrypt: the GB/T 32918.4 example decrypts to its
// message in both layouts, through the software receiver.
func TestSM2GBTExampleDecrypt(t *testing.T) {
	ex, priv := gbtKey(t)
	raw := unhex(t, ex.Ciphertext)
	c, err := ParseSM2Ciphertext(raw, SM2C1C3C2)
	if err != nil {
		t.Fatal(err)
	}
	asn1CT, err := c.Marshal(SM2ASN1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg AlgorithmName
		ct  []byte
	}{{AlgSM2PKE, raw}, {AlgSM2, raw}, {AlgSM2ASN1, asn1CT}} {
		got, err := mustAlg(t, tc.alg).Decrypt(priv, tc.ct)
		if err != nil || string(got) != ex.Message {
			t.Errorf("%s: got %q, %v; want %q", tc.alg, got, err, ex.Message)
		}
	}
	// The wrong layout is refused, not sniffed.
	if _, err := mustAlg(t, AlgSM2ASN1).Decrypt(priv, raw); err != ErrDecryption {
		t.Errorf("raw ciphertext under SM2_C1C3C2_ASN1: err = %v, want ErrDecryption", err)
	}
	if _, err := mustAlg(t, AlgSM2PKE).Decrypt(priv, asn1CT); err != ErrDecryption {
		t.Errorf("ASN.1 ciphertext under SM2PKE: err = %v, want ErrDecryption", err)
	}
}

// TestSM2GBTExampleEncrypt: our encryption with the example's fixed k
// reproduces its ciphertext, and the ASN.1 form matches the KAT file's.
func TestSM2GBTExampleEncrypt(t *testing.T) {
	ex, priv := gbtKey(t)
	var kat katFile
	readJSON(t, "sm2/sm2_encryption_kat_with_rejections.json", &kat)
	want := map[AlgorithmName]string{
		AlgSM2PKE:  ex.Ciphertext,
		AlgSM2:     ex.Ciphertext,
		AlgSM2ASN1: kat.Tests[0].CiphertextASN1,
	}
	for name, wantHex := range want {
		got, err := mustAlg(t, name).Encrypt(&fixedReader{unhex(t, ex.K)}, &priv.PublicKey, []byte(ex.Message))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, unhex(t, wantHex)) {
			t.Errorf("%s with fixed k:\n got %X\nwant %s", name, got, wantHex)
		}
	}
	if !strings.HasPrefix(ex.Ciphertext, ex.C1+ex.C3+ex.C2) {
		t.Error("example parts do not make up its ciphertext")
	}
}

// TestSM2KAT runs the positive vectors of the KAT file and its 17
// malformed ciphertexts, which must all be refused with ErrDecryption.
func TestSM2KAT(t *testing.T) {
	var kat katFile
	readJSON(t, "sm2/sm2_encryption_kat_with_rejections.json", &kat)
	rejected, positive, notApplicable := 0, 0, 0
	for _, tc := range kat.Tests {
		if tc.TestCurveC1C3C2 != "" {
			// GB/T 32918.4 Annex A uses a 256-bit test curve, not the SM2
			// curve; our code (and gmsm) only knows the SM2 curve.
			notApplicable++
			t.Logf("%s: on the GB/T 32918.4 test curve, not the SM2 curve: not applicable", tc.ID)
			continue
		}
		priv := sm2KeyFromHex(t, tc.PrivateKey)
		if got := sm2PointBytes(&priv.PublicKey); !bytes.Equal(got, unhex(t, tc.Public)) {
			t.Fatalf("%s: public key mismatch", tc.ID)
		}
		for _, f := range []struct {
			hex string
			alg AlgorithmName
		}{{tc.CiphertextC1C3C2, AlgSM2PKE}, {tc.CiphertextASN1, AlgSM2ASN1}} {
			if f.hex == "" {
				continue
			}
			positive++
			got, err := mustAlg(t, f.alg).Decrypt(priv, unhex(t, f.hex))
			if err != nil || string(got) != tc.Msg {
				t.Errorf("%s %s: got %q, %v; want %q", tc.ID, f.alg, got, err, tc.Msg)
			}
		}
		if tc.Intermediate != nil {
			// The token path: FinishWithSharedX from x2 alone finds y2.
			c, err := ParseSM2Ciphertext(unhex(t, tc.CiphertextC1C3C2), SM2C1C3C2)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.FinishWithSharedX(unhex(t, tc.Intermediate.X2))
			if err != nil || string(got) != tc.Msg {
				t.Errorf("%s FinishWithSharedX: got %q, %v", tc.ID, got, err)
			}
			y2 := referenceSqrtY(t, unhex(t, tc.Intermediate.X2))
			other := new(big.Int).Sub(sm2.P256().Params().P, y2)
			if want := new(big.Int).SetBytes(unhex(t, tc.Intermediate.Y2)); want.Cmp(y2) != 0 && want.Cmp(other) != 0 {
				t.Errorf("%s: y2 is neither root of the curve equation", tc.ID)
			}
		}
		for _, r := range tc.MustReject {
			rejected++
			enc := map[string]SM2Encoding{"C1C3C2": SM2C1C3C2, "ASN1": SM2ASN1}[r.Encoding]
			if enc == 0 {
				t.Fatalf("unknown encoding %q", r.Encoding)
			}
			alg := map[SM2Encoding]AlgorithmName{SM2C1C3C2: AlgSM2PKE, SM2ASN1: AlgSM2ASN1}[enc]
			ct := unhex(t, r.Ciphertext)
			if got, err := mustAlg(t, alg).Decrypt(priv, ct); err != ErrDecryption {
				t.Errorf("%s: %q: Decrypt gave %x, %v; want ErrDecryption", tc.ID, r.Comment, got, err)
			}
			// Token path: parse, then finish with the true x2 of C1 if
			// C1 is a valid point at all.
			if c, err := ParseSM2Ciphertext(ct, enc); err == nil {
				x2 := sharedX(t, priv, c.C1)
				if got, err := c.FinishWithSharedX(x2); err != ErrDecryption {
					t.Errorf("%s: %q: FinishWithSharedX gave %x, %v; want ErrDecryption", tc.ID, r.Comment, got, err)
				}
			} else if err != ErrDecryption {
				t.Errorf("%s: %q: parse error %v is not ErrDecryption", tc.ID, r.Comment, err)
			}
		}
		// Policy: C1 must be uncompressed (the APIs promise 04‖x‖y).
		for _, c := range tc.ImplementationChoice {
			if _, err := mustAlg(t, AlgSM2PKE).Decrypt(priv, unhex(t, c.Ciphertext)); err != ErrDecryption {
				t.Errorf("%s: %q: want refusal by policy, got %v", tc.ID, c.Comment, err)
			}
		}
	}
	if rejected != 17 {
		t.Errorf("ran %d malformed ciphertexts, want 17", rejected)
	}
	t.Logf("SM2 KAT: %d positive decryptions, %d malformed ciphertexts refused, %d vectors not applicable", positive, rejected, notApplicable)
}

// sharedX returns x([d]C1) as a token's ECDH1 derive would.
func sharedX(t *testing.T, priv *sm2.PrivateKey, c1 []byte) []byte {
	t.Helper()
	pub, err := checkC1(c1)
	if err != nil {
		t.Fatal(err)
	}
	k, err := priv.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	x2, err := k.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	return x2
}

// referenceSqrtY is an independent, variable-time y recovery for tests:
// y = (x³ + ax + b)^((p+1)/4) mod p, valid because p ≡ 3 (mod 4).
func referenceSqrtY(t *testing.T, x []byte) *big.Int {
	params := sm2.P256().Params()
	p := params.P
	if new(big.Int).Mod(p, big.NewInt(4)).Int64() != 3 {
		t.Fatal("SM2 p is not 3 mod 4")
	}
	xi := new(big.Int).SetBytes(x)
	a := new(big.Int).Sub(p, big.NewInt(3)) // SM2 a = p − 3
	rhs := new(big.Int).Exp(xi, big.NewInt(3), p)
	rhs.Add(rhs, new(big.Int).Mul(a, xi))
	rhs.Add(rhs, params.B).Mod(rhs, p)
	e := new(big.Int).Add(p, big.NewInt(1))
	e.Rsh(e, 2)
	y := new(big.Int).Exp(rhs, e, p)
	if new(big.Int).Exp(y, big.NewInt(2), p).Cmp(rhs) != 0 {
		t.Fatal("x has no square root")
	}
	return y
}

// TestFinishWithSharedXBothRoots: whichever root of the curve equation is
// the true y2, FinishWithSharedX finds it; this exercises both branches
// over many random keys (each key picks a root with probability ½).
func TestFinishWithSharedXBothRoots(t *testing.T) {
	alg := mustAlg(t, AlgSM2PKE)
	seen := map[bool]int{}
	for i := 0; i < 32; i++ {
		priv, err := sm2.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("data key #" + strings.Repeat("x", i))
		ct, err := alg.Encrypt(nil, &priv.PublicKey, msg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseSM2Ciphertext(ct, SM2C1C3C2)
		if err != nil {
			t.Fatal(err)
		}
		x1, y1 := sm2.P256().ScalarMult(new(big.Int).SetBytes(c.C1[1:33]), new(big.Int).SetBytes(c.C1[33:]), priv.D.Bytes())
		x2 := x1.FillBytes(make([]byte, 32))
		if ref := referenceSqrtY(t, x2); ref.Cmp(y1) != 0 && new(big.Int).Sub(sm2.P256().Params().P, ref).Cmp(y1) != 0 {
			t.Fatal("reference sqrt disagrees with the curve")
		}
		seen[y1.Bit(0) == 1]++
		got, err := c.FinishWithSharedX(x2)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round %d: got %q, %v", i, got, err)
		}
		// A wrong x2 (still a valid x, or not) never decrypts.
		x2[31] ^= 1
		if _, err := c.FinishWithSharedX(x2); err != ErrDecryption {
			t.Fatalf("wrong x2 accepted: %v", err)
		}
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Errorf("only one y parity seen in 32 rounds: %v", seen)
	}
}

func TestFinishWithSharedXRefusesBadInput(t *testing.T) {
	ex, _ := gbtKey(t)
	c, err := ParseSM2Ciphertext(unhex(t, ex.Ciphertext), SM2C1C3C2)
	if err != nil {
		t.Fatal(err)
	}
	p := sm2.P256().Params().P.FillBytes(make([]byte, 32))
	for name, x2 := range map[string][]byte{
		"nil":      nil,
		"31 bytes": make([]byte, 31),
		"33 bytes": make([]byte, 33),
		"x2 = p":   p,
	} {
		if _, err := c.FinishWithSharedX(x2); err != ErrDecryption {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	bad := *c
	bad.C1 = append([]byte(nil), c.C1...)
	bad.C1[64] ^= 1
	if _, err := bad.FinishWithSharedX(make([]byte, 32)); err != ErrDecryption {
		t.Errorf("off-curve C1: err = %v", err)
	}
	var nilCT *SM2Ciphertext
	if _, err := nilCT.FinishWithSharedX(make([]byte, 32)); err != ErrDecryption {
		t.Errorf("nil ciphertext: err = %v", err)
	}
}

// TestOpenSSLSM2Samples: we decrypt the ciphertexts OpenSSL 3 made
// (GM/T 0009 ASN.1), and parse OpenSSL's SM2 public keys.
func TestOpenSSLSM2Samples(t *testing.T) {
	var f struct {
		Samples []struct {
			PrivateKeyPem string `json:"privateKeyPem"`
			PublicKeyPem  string `json:"publicKeyPem"`
			Plaintext     string `json:"plaintext_hex"`
			Ciphertext    string `json:"ciphertext_asn1_der_base64"`
		} `json:"samples"`
	}
	readJSON(t, "sm2/openssl3_sm2_asn1_samples.json", &f)
	alg := mustAlg(t, AlgSM2ASN1)
	for i, s := range f.Samples {
		priv := parseSM2PKCS8PEM(t, s.PrivateKeyPem)
		pub, spec, err := ParsePublicKeyPEM(s.PublicKeyPem)
		if err != nil || spec != SpecSM2 {
			t.Fatalf("sample %d: public key: %v, %v", i, spec, err)
		}
		if !priv.PublicKey.Equal(pub) {
			t.Errorf("sample %d: public key does not match the private key", i)
		}
		ct, err := base64.StdEncoding.DecodeString(s.Ciphertext)
		if err != nil {
			t.Fatal(err)
		}
		got, err := alg.Decrypt(priv, ct)
		if err != nil || !bytes.Equal(got, unhex(t, s.Plaintext)) {
			t.Errorf("sample %d: got %x, %v; want %s", i, got, err, s.Plaintext)
		}
		// Strict DER round trip: re-encoding gives OpenSSL's bytes.
		c, err := ParseSM2Ciphertext(ct, SM2ASN1)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := c.Marshal(SM2ASN1); !bytes.Equal(again, ct) {
			t.Errorf("sample %d: ASN.1 re-encoding differs", i)
		}
	}
	if len(f.Samples) == 0 {
		t.Fatal("no samples")
	}
}

func TestSM2CiphertextMarshalRefusesBadParts(t *testing.T) {
	good := &SM2Ciphertext{C1: append([]byte{4}, make([]byte, 64)...), C3: make([]byte, 32), C2: []byte{1}}
	for name, c := range map[string]*SM2Ciphertext{
		"nil":      nil,
		"short C1": {C1: good.C1[:64], C3: good.C3, C2: good.C2},
		"C1 02":    {C1: append([]byte{2}, good.C1[1:]...), C3: good.C3, C2: good.C2},
		"short C3": {C1: good.C1, C3: good.C3[:31], C2: good.C2},
		"empty C2": {C1: good.C1, C3: good.C3},
	} {
		if _, err := c.Marshal(SM2C1C3C2); err == nil {
			t.Errorf("%s: marshalled", name)
		}
	}
	if _, err := good.Marshal(SM2Encoding(0)); err == nil {
		t.Error("encoding 0 marshalled")
	}
	if _, err := ParseSM2Ciphertext(nil, SM2Encoding(9)); !errors.Is(err, ErrDecryption) {
		t.Errorf("unknown encoding: %v", err)
	}
}
