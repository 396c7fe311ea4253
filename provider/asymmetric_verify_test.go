package provider_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/p11kms/p11kms/provider"
)

// openssl runs openssl and returns its standard output.
func openssl(t *testing.T, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("openssl", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

// highS is the other valid ECDSA signature (r, n-s) of a DER signature on
// P-256 (malleability: both forms verify in Go and in the token).
func highS(t *testing.T, der []byte) []byte {
	var v struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &v); err != nil {
		t.Fatal(err)
	}
	n, _ := new(big.Int).SetString("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)
	v.S.Sub(n, v.S)
	b, _ := asn1.Marshal(v)
	return b
}

// TestAsymmetricVerifyInGoAgreesWithTheToken: AsymmetricVerify checks
// signatures in Go from the version's public key (secp256k1, which
// neither std nor gmsm has, in the token). For every algorithm the Go
// path and the token's C_Verify give the same answer on the token's own
// signature (which OpenSSL verifies), on OpenSSL's signatures by another
// key, and on altered, truncated, padded and non-DER signatures.
func TestAsymmetricVerifyInGoAgreesWithTheToken(t *testing.T) {
	s, _, _ := newService(t)
	dir := t.TempDir()
	digest := sha256.Sum256([]byte("a message"))
	dFile := filepath.Join(dir, "digest")
	os.WriteFile(dFile, digest[:], 0o600)
	pss := []string{"-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:32"}
	for _, c := range []struct {
		spec, alg string
		gen, opts []string
	}{
		{provider.KeySpecRSA2048, provider.AlgRSAPSSSHA256, []string{"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, pss},
		{provider.KeySpecRSA2048, provider.AlgRSAPKCS1SHA256, []string{"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, nil},
		{provider.KeySpecECP256, provider.AlgECDSASHA256, []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"}, nil},
		{provider.KeySpecECP256K, provider.AlgECDSASHA256, []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"}, nil},
	} {
		name := c.spec + " " + c.alg
		k, err := s.CreateKey(bg, &provider.CreateKeyRequest{KeySpec: c.spec, KeyUsage: provider.KeyUsageSign})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		id, ver := k.KeyMetadata.KeyId, k.KeyMetadata.PrimaryKeyVersion
		pk, err := s.GetPublicKey(bg, &provider.GetPublicKeyRequest{KeyId: id, KeyVersionId: ver})
		if err != nil {
			t.Fatal(err)
		}
		pubFile, sigFile, other := filepath.Join(dir, "pub.pem"), filepath.Join(dir, "sig"), filepath.Join(dir, "other.pem")
		os.WriteFile(pubFile, []byte(pk.PublicKey), 0o600)
		r, err := s.AsymmetricSign(bg, &provider.AsymmetricSignRequest{KeyId: id, KeyVersionId: ver, Algorithm: c.alg,
			Digest: base64.StdEncoding.EncodeToString(digest[:])})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		good, _ := base64.StdEncoding.DecodeString(r.Value)
		os.WriteFile(sigFile, good, 0o600)
		if out := openssl(t, append([]string{"pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-in", dFile, "-sigfile", sigFile,
			"-pkeyopt", "digest:sha256"}, c.opts...)...); !bytes.Contains(out, []byte("Signature Verified Successfully")) {
			t.Fatalf("%s: OpenSSL does not verify the token's signature: %s", name, out)
		}
		openssl(t, append([]string{"genpkey", "-out", other}, c.gen...)...)
		byOther := openssl(t, append([]string{"pkeyutl", "-sign", "-inkey", other, "-in", dFile, "-pkeyopt", "digest:sha256"}, c.opts...)...)
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0x10
		cases := map[string]struct {
			sig  []byte
			want bool
		}{
			"the token's": {good, true}, "OpenSSL's by another key": {byOther, false}, "one bit flipped": {flipped, false},
			"truncated": {good[:len(good)-1], false}, "a byte appended": {append(bytes.Clone(good), 0), false},
			"zero": {make([]byte, len(good)), false},
		}
		if c.spec == provider.KeySpecECP256 {
			cases["high S"] = struct {
				sig  []byte
				want bool
			}{highS(t, good), true}
		}
		for what, sc := range cases {
			inGo, inToken, err := s.VerifyBothWays(bg, id, ver, c.alg, digest[:], sc.sig)
			if err != nil || inGo != sc.want || inToken != sc.want {
				t.Errorf("%s, %s signature: in Go %v, in the token %v (%v); want %v", name, what, inGo, inToken, err, sc.want)
			}
			v, err := s.AsymmetricVerify(bg, &provider.AsymmetricVerifyRequest{KeyId: id, KeyVersionId: ver, Algorithm: c.alg,
				Digest: base64.StdEncoding.EncodeToString(digest[:]), Signature: base64.StdEncoding.EncodeToString(sc.sig)})
			if err != nil || v.Value != sc.want {
				t.Errorf("%s, %s signature: AsymmetricVerify %+v %v, want %v", name, what, v, err, sc.want)
			}
		}
	}
}
