package wrap

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/emmansun/gmsm/sm2"
)

// Interop with OpenSSL 3 `openssl pkeyutl`. These tests never skip: if
// openssl is missing they fail, because interop is part of what wrap
// promises (docs/DESIGN.md, Formats).

func opensslPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is required for the interop tests (install OpenSSL 3): %v", err)
	}
	return p
}

// pkeyutl runs `openssl pkeyutl args... -in <in>` and returns its output.
func pkeyutl(t *testing.T, in []byte, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	inFile, outFile := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(inFile, in, 0o600); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"pkeyutl"}, args...)
	args = append(args, "-in", inFile, "-out", outFile)
	cmd := exec.Command(opensslPath(t), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	out, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keyFile(name string) string { return filepath.Join(testdataDir, "keys", name) }

var oaepOpts = map[AlgorithmName][]string{
	AlgRSAOAEPSHA1:   {"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1"},
	AlgRSAOAEPSHA256: {"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"},
	AlgRSAPKCS1v15:   {"-pkeyopt", "rsa_padding_mode:pkcs1"},
}

func TestOpenSSLDecryptsOurRSA(t *testing.T) {
	for _, bits := range []int{2048, 3072} {
		priv := loadRSAKey(t, fmt.Sprintf("rsa%d.pem", bits))
		for name, opts := range oaepOpts {
			a := mustAlg(t, name)
			for _, n := range []int{1, 32, a.MaxPlaintext(&priv.PublicKey)} {
				pt := make([]byte, n)
				rand.Read(pt)
				ct, err := a.Encrypt(rand.Reader, &priv.PublicKey, pt)
				if err != nil {
					t.Fatal(err)
				}
				args := append([]string{"-decrypt", "-inkey", keyFile(fmt.Sprintf("rsa%d.pem", bits))}, opts...)
				if got := pkeyutl(t, ct, args...); !bytes.Equal(got, pt) {
					t.Errorf("%s RSA-%d, %d bytes: OpenSSL decrypted %x, want %x", name, bits, n, got, pt)
				}
			}
		}
	}
}

func TestWeDecryptOpenSSLRSA(t *testing.T) {
	priv := loadRSAKey(t, "rsa2048.pem")
	pub := keyFile("rsa2048.pub.pem")
	for name, opts := range oaepOpts {
		a := mustAlg(t, name)
		for _, n := range []int{1, 32, a.MaxPlaintext(&priv.PublicKey)} {
			pt := make([]byte, n)
			rand.Read(pt)
			args := append([]string{"-encrypt", "-pubin", "-inkey", pub}, opts...)
			ct := pkeyutl(t, pt, args...)
			// Software receiver.
			if got, err := a.Decrypt(priv, ct); err != nil || !bytes.Equal(got, pt) {
				t.Errorf("%s, %d bytes: Decrypt: %v", name, n, err)
			}
			// Token fallback path: raw RSA, then our decode step.
			em := rawDecrypt(priv, ct)
			var got []byte
			var err error
			if a.Kind == KindRSAOAEP {
				got, err = DecodeOAEP(a.Hash, em, priv.Size(), nil)
			} else {
				got, err = DecodePKCS1v15(em, priv.Size())
			}
			if err != nil || !bytes.Equal(got, pt) {
				t.Errorf("%s, %d bytes: raw RSA + decode: %v", name, n, err)
			}
		}
	}
}

func TestOpenSSLDecryptsOurSM2ASN1(t *testing.T) {
	pub, spec, err := ParsePublicKeyPEM(string(readTestdata(t, "keys/sm2.pub.pem")))
	if err != nil || spec != SpecSM2 {
		t.Fatal(spec, err)
	}
	a := mustAlg(t, AlgSM2ASN1)
	check := func(what string, ct, pt []byte) {
		t.Helper()
		if got := pkeyutl(t, ct, "-decrypt", "-inkey", keyFile("sm2.pem")); !bytes.Equal(got, pt) {
			t.Errorf("%s: OpenSSL decrypted %x, want %x", what, got, pt)
		}
	}
	for _, n := range []int{1, 16, 32, 100, MaxSM2Plaintext} {
		pt := make([]byte, n)
		rand.Read(pt)
		ct, err := a.Encrypt(rand.Reader, pub, pt)
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("%d bytes", n), ct, pt)
	}
	// DER INTEGER edge cases in C1: x shorter than 32 bytes (leading zero
	// byte dropped) and x with its top bit set (00 pad byte added). Pick k
	// so that [k]G has the shape, then encrypt with that k.
	for _, shape := range []struct {
		name string
		ok   func(x []byte) bool
	}{
		{"x < 2^248", func(x []byte) bool { return x[0] == 0 }},
		{"x ≥ 2^255", func(x []byte) bool { return x[0]&0x80 != 0 }},
	} {
		k := findK(t, shape.ok)
		pt := []byte("edge-case C1 " + shape.name)
		ct, err := a.Encrypt(&fixedReader{k}, pub, pt)
		if err != nil {
			t.Fatal(err)
		}
		check(shape.name, ct, pt)
	}
}

// findK returns a scalar k whose point [k]G has an x-coordinate with the
// given shape.
func findK(t *testing.T, ok func(x []byte) bool) []byte {
	t.Helper()
	k := make([]byte, 32)
	for i := 0; i < 100000; i++ {
		rand.Read(k)
		x, _ := sm2.P256().ScalarBaseMult(k)
		if new(big.Int).SetBytes(k).Cmp(sm2.P256().Params().N) < 0 && ok(x.FillBytes(make([]byte, 32))) {
			return k
		}
	}
	t.Fatal("no suitable k found")
	return nil
}

func TestWeDecryptOpenSSLSM2(t *testing.T) {
	dir := t.TempDir()
	// A fresh OpenSSL SM2 key as well as the committed one.
	fresh := filepath.Join(dir, "sm2.pem")
	if out, err := exec.Command(opensslPath(t), "genpkey", "-algorithm", "SM2", "-out", fresh).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	freshPub := filepath.Join(dir, "sm2.pub.pem")
	if out, err := exec.Command(opensslPath(t), "pkey", "-in", fresh, "-pubout", "-out", freshPub).CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, out)
	}
	a := mustAlg(t, AlgSM2ASN1)
	for _, kp := range [][2]string{{keyFile("sm2.pem"), keyFile("sm2.pub.pem")}, {fresh, freshPub}} {
		privPEM, _ := os.ReadFile(kp[0])
		pubPEM, _ := os.ReadFile(kp[1])
		priv := parseSM2PKCS8PEM(t, string(privPEM))
		pub, _, err := ParsePublicKeyPEM(string(pubPEM))
		if err != nil {
			t.Fatal(err)
		}
		if !priv.PublicKey.Equal(pub) {
			t.Fatal("OpenSSL public key does not match its private key")
		}
		for _, n := range []int{1, 16, 32, 100} {
			pt := make([]byte, n)
			rand.Read(pt)
			ct := pkeyutl(t, pt, "-encrypt", "-pubin", "-inkey", kp[1])
			if got, err := a.Decrypt(priv, ct); err != nil || !bytes.Equal(got, pt) {
				t.Errorf("%s, %d bytes: %x, %v", kp[0], n, got, err)
			}
			// Same ciphertext re-laid as C1C3C2 decrypts under SM2PKE.
			c, err := ParseSM2Ciphertext(ct, SM2ASN1)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := c.Marshal(SM2C1C3C2)
			if got, err := mustAlg(t, AlgSM2PKE).Decrypt(priv, raw); err != nil || !bytes.Equal(got, pt) {
				t.Errorf("C1C3C2 form: %v", err)
			}
		}
	}
}
