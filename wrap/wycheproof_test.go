package wrap

import (
	"crypto"
	"crypto/rsa"
	_ "crypto/sha1" // register the Wycheproof hashes for crypto.Hash.New
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"
)

// Wycheproof RSA decryption vectors (testdata/wrap/wycheproof, see its
// README) run through the receiving side's decode path: a raw RSA step
// standing in for the token's CKM_RSA_X_509, then DecodeOAEP /
// DecodePKCS1v15. Vectors the software receiver (Algorithm.Decrypt) can
// express are run through it as well.

type wycheproofFile struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []struct {
		KeySize    int                  `json:"keySize"`
		SHA        string               `json:"sha"`
		MGFSHA     string               `json:"mgfSha"`
		PrivateKey wycheproofPrivateKey `json:"privateKey"`
		Tests      []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Msg     string   `json:"msg"`
			CT      string   `json:"ct"`
			Label   string   `json:"label"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

var wycheproofHashes = map[string]crypto.Hash{
	"SHA-1":   crypto.SHA1,
	"SHA-224": crypto.SHA224,
	"SHA-256": crypto.SHA256,
	"SHA-384": crypto.SHA384,
	"SHA-512": crypto.SHA512,
}

// rawRSA stands in for a token's CKM_RSA_X_509 decryption: it refuses a
// ciphertext that is not exactly k bytes or not below n (as a token
// returns CKR_ENCRYPTED_DATA_INVALID / _LEN_RANGE), otherwise returns
// c^d mod n as k bytes, computed with the CRT. Test-only: math/big is not
// constant time.
func rawRSA(key *rawKey, ct []byte) ([]byte, bool) {
	k := (key.n.BitLen() + 7) / 8
	if len(ct) != k {
		return nil, false
	}
	c := new(big.Int).SetBytes(ct)
	if c.Cmp(key.n) >= 0 {
		return nil, false
	}
	m1 := new(big.Int).Exp(c, key.dp, key.p)
	m2 := new(big.Int).Exp(c, key.dq, key.q)
	h := m1.Sub(m1, m2)
	h.Mul(h, key.qinv).Mod(h, key.p)
	m := h.Mul(h, key.q).Add(h, m2)
	return m.FillBytes(make([]byte, k)), true
}

// rawKey is a Wycheproof private key in CRT form.
type rawKey struct{ n, p, q, dp, dq, qinv *big.Int }

type wycheproofPrivateKey struct {
	Modulus         string `json:"modulus"`
	PrivateExponent string `json:"privateExponent"`
	PublicExponent  string `json:"publicExponent"`
	Prime1          string `json:"prime1"`
	Prime2          string `json:"prime2"`
	Exponent1       string `json:"exponent1"`
	Exponent2       string `json:"exponent2"`
	Coefficient     string `json:"coefficient"`
}

func (w *wycheproofPrivateKey) raw(t *testing.T) *rawKey {
	return &rawKey{
		n: bigHex(t, w.Modulus), p: bigHex(t, w.Prime1), q: bigHex(t, w.Prime2),
		dp: bigHex(t, w.Exponent1), dq: bigHex(t, w.Exponent2), qinv: bigHex(t, w.Coefficient),
	}
}

// rsa builds an *rsa.PrivateKey for the software receiver.
func (w *wycheproofPrivateKey) rsa(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	priv := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: bigHex(t, w.Modulus), E: int(bigHex(t, w.PublicExponent).Int64())},
		D:         bigHex(t, w.PrivateExponent),
		Primes:    []*big.Int{bigHex(t, w.Prime1), bigHex(t, w.Prime2)},
	}
	priv.Precompute()
	if err := priv.Validate(); err != nil {
		t.Fatalf("Wycheproof key: %v", err)
	}
	return priv
}

// wycheproofTally counts what happened to one file's vectors.
type wycheproofTally struct {
	decodeRun, rawRefused, softwareRun, notApplicable, acceptable int
}

func bigHex(t *testing.T, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		t.Fatalf("bad hex integer %q", s)
	}
	return n
}

func TestWycheproofOAEP(t *testing.T) {
	files := []string{
		"rsa_oaep_2048_sha1_mgf1sha1_test.json",
		"rsa_oaep_2048_sha256_mgf1sha256_test.json",
		"rsa_oaep_3072_sha256_mgf1sha256_test.json",
		"rsa_oaep_4096_sha256_mgf1sha256_test.json",
		"rsa_oaep_2048_sha256_mgf1sha1_test.json",
		"rsa_oaep_misc_test.json",
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			var f wycheproofFile
			readJSON(t, "wycheproof/"+name, &f)
			var tally wycheproofTally
			total := 0
			for _, g := range f.TestGroups {
				hash, ok1 := wycheproofHashes[g.SHA]
				mgfHash, ok2 := wycheproofHashes[g.MGFSHA]
				if !ok1 || !ok2 {
					tally.notApplicable += len(g.Tests)
					t.Logf("group %d-bit %s/MGF1-%s: hash not supported, %d vectors not applicable", g.KeySize, g.SHA, g.MGFSHA, len(g.Tests))
					continue
				}
				raw := g.PrivateKey.raw(t)
				k := (raw.n.BitLen() + 7) / 8
				var priv *rsa.PrivateKey // built only if the software receiver runs
				for _, tc := range g.Tests {
					total++
					ct, msg, label := unhex(t, tc.CT), unhex(t, tc.Msg), unhex(t, tc.Label)
					id := fmt.Sprintf("tcId %d (%s, %v)", tc.TcID, tc.Comment, tc.Flags)

					var got []byte
					var err error
					em, ok := rawRSA(raw, ct)
					if !ok {
						tally.rawRefused++
						err = ErrDecryption
					} else if hash == mgfHash {
						got, err = DecodeOAEP(hash, em, k, label)
					} else {
						got, err = decodeOAEP(hash, mgfHash, em, k, label)
					}
					if ok {
						tally.decodeRun++
					}
					checkWycheproofResult(t, &tally, id, tc.Result, got, err, msg)

					// Software receiver: only our algorithms' shapes
					// (same hash, SHA-1 or SHA-256, empty label).
					if alg := oaepAlgorithm(hash, mgfHash); alg != nil && len(label) == 0 && g.KeySize >= 2048 {
						tally.softwareRun++
						if priv == nil {
							priv = g.PrivateKey.rsa(t)
						}
						got, err := alg.Decrypt(priv, ct)
						checkWycheproofResult(t, &wycheproofTally{}, id+" via "+alg.Name, tc.Result, got, err, msg)
					}
				}
			}
			if total != f.NumberOfTests {
				t.Errorf("ran %d vectors, file says %d", total, f.NumberOfTests)
			}
			t.Logf("%s: %d vectors; %d through the decode step, %d refused by the raw RSA step (ciphertext length or value), %d also through Algorithm.Decrypt, %d acceptable, %d not applicable",
				name, total, tally.decodeRun, tally.rawRefused, tally.softwareRun, tally.acceptable, tally.notApplicable)
		})
	}
}

func TestWycheproofPKCS1(t *testing.T) {
	alg, err := LookupAlgorithm(string(AlgRSAPKCS1v15))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rsa_pkcs1_2048_test.json", "rsa_pkcs1_3072_test.json", "rsa_pkcs1_4096_test.json"} {
		t.Run(name, func(t *testing.T) {
			var f wycheproofFile
			readJSON(t, "wycheproof/"+name, &f)
			var tally wycheproofTally
			total := 0
			for _, g := range f.TestGroups {
				raw := g.PrivateKey.raw(t)
				k := (raw.n.BitLen() + 7) / 8
				priv := g.PrivateKey.rsa(t)
				for _, tc := range g.Tests {
					total++
					ct, msg := unhex(t, tc.CT), unhex(t, tc.Msg)
					id := fmt.Sprintf("tcId %d (%s, %v)", tc.TcID, tc.Comment, tc.Flags)
					var got []byte
					var err error
					if em, ok := rawRSA(raw, ct); ok {
						tally.decodeRun++
						got, err = DecodePKCS1v15(em, k)
					} else {
						tally.rawRefused++
						err = ErrDecryption
					}
					checkWycheproofResult(t, &tally, id, tc.Result, got, err, msg)

					tally.softwareRun++
					got, err = alg.Decrypt(priv, ct)
					checkWycheproofResult(t, &wycheproofTally{}, id+" via "+alg.Name, tc.Result, got, err, msg)
				}
			}
			if total != f.NumberOfTests {
				t.Errorf("ran %d vectors, file says %d", total, f.NumberOfTests)
			}
			t.Logf("%s: %d vectors; %d through DecodePKCS1v15, %d refused by the raw RSA step, %d also through Algorithm.Decrypt, %d acceptable, %d not applicable",
				name, total, tally.decodeRun, tally.rawRefused, tally.softwareRun, tally.acceptable, tally.notApplicable)
		})
	}
}

// checkWycheproofResult checks one outcome. Every failure must be exactly
// ErrDecryption (one error for every cause). "acceptable" passes either
// way and is logged.
func checkWycheproofResult(t *testing.T, tally *wycheproofTally, id, result string, got []byte, err error, msg []byte) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrDecryption) {
		t.Errorf("%s: error %v is not ErrDecryption", id, err)
	}
	if err != nil && err != ErrDecryption && result != "valid" {
		t.Errorf("%s: error %q is not exactly ErrDecryption: failures must look alike", id, err)
	}
	switch result {
	case "valid":
		if err != nil {
			t.Errorf("%s: valid vector refused: %v", id, err)
		} else if !slices.Equal(got, msg) {
			t.Errorf("%s: got %x, want %x", id, got, msg)
		}
	case "invalid":
		if err == nil {
			t.Errorf("%s: invalid vector accepted, got %x", id, got)
		}
	case "acceptable":
		tally.acceptable++
		if err == nil && !slices.Equal(got, msg) {
			t.Errorf("%s: acceptable vector decrypted to %x, want %x", id, got, msg)
		}
		t.Logf("%s: acceptable vector: accepted=%v", id, err == nil)
	default:
		t.Errorf("%s: unknown result %q", id, result)
	}
}

// oaepAlgorithm returns the table entry for an OAEP hash pair, or nil.
func oaepAlgorithm(hash, mgfHash crypto.Hash) *Algorithm {
	if hash != mgfHash {
		return nil
	}
	for _, a := range algorithms {
		if a.Kind == KindRSAOAEP && a.Hash == hash {
			return &a
		}
	}
	return nil
}
