package hsm

import (
	"encoding/asn1"
	"math/big"
	"testing"
)

// FuzzRawECDSA: the ECDSA signature parser never panics, and what it
// accepts is strict DER of 0 < r, s < n that converts back to itself.
func FuzzRawECDSA(f *testing.F) {
	good, _ := asn1.Marshal(ecdsaSig{R: big.NewInt(1), S: big.NewInt(2)})
	f.Add(good)
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, sig []byte) {
		for _, c := range []Curve{CurveP256, CurveSecp256k1, CurveSM2} {
			raw, err := rawECDSA(c, sig)
			if err != nil {
				continue
			}
			again, _ := asn1.Marshal(ecdsaSig{R: new(big.Int).SetBytes(raw[:32]), S: new(big.Int).SetBytes(raw[32:])})
			if string(again) != string(sig) {
				t.Fatalf("accepted %x, which is %x in DER", sig, again)
			}
		}
	})
}
