package wrap

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
)

// sm2ZeroTK is the smallest k for which t = KDF(x2‖y2, 1) is all zero
// under the GB/T 32918.4 example key (found by trying k = 1, 2, …):
// a 1-byte encryption with it must go back to step A1 and draw a new k.
// TestSM2EncryptRetryDrawsFreshK checks it still has that property.
const sm2ZeroTK = 470

// sm2EncodingAlgorithms are one algorithm per SM2 ciphertext layout
// (SM2 and SM2PKE are the same bytes).
var sm2EncodingAlgorithms = []AlgorithmName{AlgSM2PKE, AlgSM2ASN1}

// gmsmDecrypt decrypts with gmsm's own receiver, telling it the layout
// explicitly (it would otherwise sniff it).
func gmsmDecrypt(priv *sm2.PrivateKey, ct []byte, enc SM2Encoding) ([]byte, error) {
	opts := sm2.NewPlainDecrypterOpts(sm2.C1C3C2)
	if enc == SM2ASN1 {
		opts = sm2.ASN1DecrypterOpts
	}
	return priv.Decrypt(nil, ct, opts)
}

// checkSM2Decrypts reports an error unless ct decrypts to msg both with
// wrap's receiver and with gmsm's.
func checkSM2Decrypts(t *testing.T, a *Algorithm, priv *sm2.PrivateKey, ct, msg []byte) bool {
	t.Helper()
	ok := true
	if got, err := a.Decrypt(priv, ct); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("%s: wrap decrypted %x to %x, %v; want %x", a.Name, ct, got, err, msg)
		ok = false
	}
	if got, err := gmsmDecrypt(priv, ct, a.SM2Encoding); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("%s: gmsm decrypted %x to %x, %v; want %x", a.Name, ct, got, err, msg)
		ok = false
	}
	return ok
}

// TestSM2EncryptRetryDrawsFreshK: when the first k gives an all-zero t
// (step A5), encryption draws a new k and encrypts to the recipient's key.
// gmsm v0.44.0 (internal/sm2.Encrypt) retried with Q already overwritten
// by [k]Q, so its retried ciphertext decrypted for nobody. The reader
// yields k = sm2ZeroTK, then the example's k: the result must be exactly
// what the example's k alone gives, and decrypt with wrap and gmsm.
func TestSM2EncryptRetryDrawsFreshK(t *testing.T) {
	ex, priv := gbtKey(t)
	zeroTK := big.NewInt(sm2ZeroTK).FillBytes(make([]byte, 32))
	x2, y2 := sm2.P256().ScalarMult(priv.X, priv.Y, zeroTK)
	x2y2 := append(x2.FillBytes(make([]byte, 32)), y2.FillBytes(make([]byte, 32))...)
	if tk := sm3.Kdf(x2y2, 1); tk[0] != 0 {
		t.Fatalf("k = %d gives t = %x for 1 byte, not zero: the vector no longer exercises the retry", sm2ZeroTK, tk)
	}
	exampleK := unhex(t, ex.K)
	msg := []byte{0x5a}
	for _, name := range sm2EncodingAlgorithms {
		a := mustAlg(t, name)
		want, err := a.Encrypt(&fixedReader{exampleK}, &priv.PublicKey, msg)
		if err != nil {
			t.Fatalf("%s with the example's k: %v", name, err)
		}
		reader := &fixedReader{append(append([]byte(nil), zeroTK...), exampleK...)}
		got, err := a.Encrypt(reader, &priv.PublicKey, msg)
		if err != nil {
			t.Fatalf("%s with k giving t = 0, then the example's k: %v", name, err)
		}
		if len(reader.b) != 0 {
			t.Errorf("%s: %d bytes of the second k left unread", name, len(reader.b))
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: after the retry\n got %x\nwant %x (the example's k alone)", name, got, want)
		}
		checkSM2Decrypts(t, a, priv, got, msg)
	}
}

// TestSM2OneByteExportsDecrypt: 20,000 one-byte SM2 encryptions in each
// layout all decrypt, with wrap's receiver and with gmsm's. About 1 in 256
// of them needs the step-A5 retry, which gmsm v0.44.0 got wrong (it made
// 71 of 20,000 undecryptable).
func TestSM2OneByteExportsDecrypt(t *testing.T) {
	const rounds = 20000
	keys := make([]*sm2.PrivateKey, 8)
	for i := range keys {
		var err error
		if keys[i], err = sm2.GenerateKey(rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range sm2EncodingAlgorithms {
		a := mustAlg(t, name)
		failures := 0
		for i := 0; i < rounds && failures < 5; i++ {
			priv := keys[i%len(keys)]
			msg := []byte{byte(i)}
			ct, err := a.Encrypt(nil, &priv.PublicKey, msg)
			if err != nil {
				t.Fatalf("%s round %d: %v", name, i, err)
			}
			if !checkSM2Decrypts(t, a, priv, ct, msg) {
				failures++
			}
		}
		if failures > 0 {
			t.Errorf("%s: stopped after %d undecryptable ciphertexts", name, failures)
		}
	}
}

// endlessReader yields the same byte forever and counts what it gave.
type endlessReader struct {
	b    byte
	read int
}

func (r *endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
	}
	r.read += len(p)
	return len(p), nil
}

// TestSM2EncryptBoundsDraws: an entropy source that only ever gives an
// unusable k (0, or ≥ n) makes encryption fail after sm2MaxDraws draws
// of 32 bytes, instead of looping forever (gmsm's sampling loop has no
// bound).
func TestSM2EncryptBoundsDraws(t *testing.T) {
	_, priv := gbtKey(t)
	for _, b := range []byte{0x00, 0xff} {
		r := &endlessReader{b: b}
		_, err := mustAlg(t, AlgSM2).Encrypt(r, &priv.PublicKey, []byte("k"))
		if err == nil || !strings.Contains(err.Error(), "entropy") {
			t.Errorf("reader of 0x%02x bytes: err = %v, want an error about the entropy source", b, err)
		}
		if want := sm2MaxDraws * sm2FieldSize; r.read != want {
			t.Errorf("reader of 0x%02x bytes: %d bytes drawn, want %d", b, r.read, want)
		}
	}
}

// An empty plaintext is refused at once, drawing nothing: its KDF output is
// empty, so every draw would be retried and the error would blame the
// entropy source.
func TestSM2EncryptRefusesEmptyPlaintextAtOnce(t *testing.T) {
	_, priv := gbtKey(t)
	r := &endlessReader{b: 0x5a}
	_, err := encryptSM2(r, &priv.PublicKey, nil, SM2C1C3C2)
	if err == nil || !strings.Contains(err.Error(), "empty") || r.read != 0 {
		t.Fatalf("err = %v after %d bytes drawn, want an 'empty plaintext' error and no draw", err, r.read)
	}
}
