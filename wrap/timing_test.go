package wrap

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
)

// welch returns Welch's t statistic of two samples (dudect's leakage test:
// |t| above about 4.5 suggests the timing depends on the input class).
func welch(a, b []float64) float64 {
	mean := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	variance := func(x []float64, m float64) float64 {
		s := 0.0
		for _, v := range x {
			s += (v - m) * (v - m)
		}
		return s / float64(len(x)-1)
	}
	ma, mb := mean(a), mean(b)
	return (ma - mb) / math.Sqrt(variance(a, ma)/float64(len(a))+variance(b, mb)/float64(len(b)))
}

// crop drops the slowest 10% (interrupts, GC): dudect's percentile crop.
func crop(x []float64) []float64 {
	s := append([]float64(nil), x...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[:len(s)*9/10]
}

// timeClasses runs f on randomly interleaved inputs of two classes and
// returns the cropped timings of each.
func timeClasses(n int, f func(class int)) ([]float64, []float64) {
	var a, b []float64
	for i := 0; i < n; i++ {
		c := mrand.IntN(2)
		t0 := time.Now()
		f(c)
		d := float64(time.Since(t0).Nanoseconds())
		if c == 0 {
			a = append(a, d)
		} else {
			b = append(b, d)
		}
	}
	return crop(a), crop(b)
}

// BenchmarkTimingOAEPDecode reports |t| between OAEP blocks that fail at
// the first byte and blocks whose only flaw is a missing 0x01 separator:
// a constant-time decode shows no significant difference. Reported, not
// asserted: the machine is shared and noisy.
func BenchmarkTimingOAEPDecode(b *testing.B) {
	const k = 256
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	valid, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, make([]byte, 32), nil)
	em := new(big.Int).Exp(new(big.Int).SetBytes(valid), priv.D, priv.N).FillBytes(make([]byte, k))
	badFirst := append([]byte(nil), em...)
	badFirst[0] = 1 // fails at the first check
	// A block whose only flaw is a missing 0x01 separator: the scan has to
	// reach the end of DB to fail.
	hLen := sha256.Size
	db := make([]byte, k-hLen-1)
	lHash := sha256.Sum256(nil)
	copy(db, lHash[:])
	seed := make([]byte, hLen)
	rand.Read(seed)
	mgf1XOR(sha256.New(), db, seed)
	mgf1XOR(sha256.New(), seed, db)
	badLast := append(append([]byte{0}, seed...), db...)
	inputs := [2][]byte{badFirst, badLast}
	b.ResetTimer()
	a, c := timeClasses(max(b.N, 20000), func(class int) { _, _ = DecodeOAEP(crypto.SHA256, inputs[class], k, nil) })
	b.ReportMetric(math.Abs(welch(a, c)), "|t|")
}

// BenchmarkTimingSM2C3 reports |t| between SM2 ciphertexts whose C3 is
// wrong in its first byte and in its last byte: the compare is constant
// time, and both roots of y2 are always tried.
func BenchmarkTimingSM2C3(b *testing.B) {
	priv, _ := sm2.GenerateKey(rand.Reader)
	alg, _ := LookupAlgorithm("SM2PKE")
	ct, _ := alg.Encrypt(rand.Reader, &priv.PublicKey, make([]byte, 32))
	parsed, err := ParseSM2Ciphertext(ct, SM2C1C3C2)
	if err != nil {
		b.Fatal(err)
	}
	x1, y1 := new(big.Int).SetBytes(parsed.C1[1:33]), new(big.Int).SetBytes(parsed.C1[33:])
	x2, _ := sm2.P256().ScalarMult(x1, y1, priv.D.Bytes())
	shared := x2.FillBytes(make([]byte, 32))
	first, last := *parsed, *parsed
	first.C3 = append([]byte(nil), parsed.C3...)
	first.C3[0] ^= 1
	last.C3 = append([]byte(nil), parsed.C3...)
	last.C3[31] ^= 1
	inputs := [2]*SM2Ciphertext{&first, &last}
	b.ResetTimer()
	a, c := timeClasses(max(b.N, 5000), func(class int) { _, _ = inputs[class].FinishWithSharedX(shared) })
	b.ReportMetric(math.Abs(welch(a, c)), "|t|")
}
