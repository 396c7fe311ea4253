package aliyun_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/wrap"
)

// asymEnv is the official v3 SDK against a fresh server, with OpenSSL.
type asymEnv struct {
	t   *testing.T
	c   *kms.Client
	dir string
}

func newAsymEnv(t *testing.T) *asymEnv {
	e := newEnv(t)
	c, err := kms.NewClient(&openapi.Config{Endpoint: tea.String(e.addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
		AccessKeyId: tea.String(testAK), AccessKeySecret: tea.String(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return &asymEnv{t: t, c: c, dir: t.TempDir()}
}

// createKey makes a key and returns its id and first version.
func (a *asymEnv) createKey(spec, usage string) (string, string) {
	a.t.Helper()
	r, err := a.c.CreateKey(&kms.CreateKeyRequest{KeySpec: tea.String(spec), KeyUsage: tea.String(usage)})
	if err != nil {
		a.t.Fatalf("CreateKey %s %s: %v", spec, usage, err)
	}
	m := r.Body.KeyMetadata
	if got := tea.StringValue(m.KeySpec); got != spec {
		a.t.Fatalf("KeySpec %q, want %q", got, spec)
	}
	return tea.StringValue(m.KeyId), tea.StringValue(m.PrimaryKeyVersion)
}

// publicKeyFile writes the version's public key (GetPublicKey) for OpenSSL.
func (a *asymEnv) publicKeyFile(id, ver string) string {
	a.t.Helper()
	r, err := a.c.GetPublicKey(&kms.GetPublicKeyRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver)})
	if err != nil {
		a.t.Fatal(err)
	}
	f := filepath.Join(a.dir, id+".pem")
	if err := os.WriteFile(f, []byte(tea.StringValue(r.Body.PublicKey)), 0o600); err != nil {
		a.t.Fatal(err)
	}
	return f
}

// openssl runs openssl with args and returns its standard output.
func (a *asymEnv) openssl(args ...string) []byte {
	a.t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("openssl", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		a.t.Fatalf("openssl %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

func (a *asymEnv) file(name string, b []byte) string {
	f := filepath.Join(a.dir, name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		a.t.Fatal(err)
	}
	return f
}

func (a *asymEnv) decrypt(id, ver, alg string, ct []byte) ([]byte, error) {
	r, err := a.c.AsymmetricDecrypt(&kms.AsymmetricDecryptRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
		Algorithm: tea.String(alg), CiphertextBlob: tea.String(base64.StdEncoding.EncodeToString(ct))})
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(tea.StringValue(r.Body.Plaintext))
}

// TestAsymmetricDecryptOpenSSLCiphertexts: OpenSSL encrypts under the
// public key GetPublicKey returns (RSA-OAEP with SHA-1 and SHA-256, SM2),
// and AsymmetricDecrypt returns the plaintext; AsymmetricEncrypt's
// ciphertexts decrypt too; another key's ciphertext is InvalidCiphertext.
func TestAsymmetricDecryptOpenSSLCiphertexts(t *testing.T) {
	a := newAsymEnv(t)
	pt := make([]byte, 32)
	rand.Read(pt)
	in := a.file("pt", pt)
	rsaID, rsaVer := a.createKey("RSA_2048", "ENCRYPT/DECRYPT")
	otherID, otherVer := a.createKey("RSA_3072", "ENCRYPT/DECRYPT")
	rsaPub := a.publicKeyFile(rsaID, rsaVer)
	for alg, md := range map[string]string{"RSAES_OAEP_SHA_1": "sha1", "RSAES_OAEP_SHA_256": "sha256"} {
		ct := a.openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", rsaPub, "-in", in, "-pkeyopt", "rsa_padding_mode:oaep",
			"-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md)
		got, err := a.decrypt(rsaID, rsaVer, alg, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: OpenSSL ciphertext decrypted to %x, %v; want %x", alg, got, err, pt)
		}
		_, err = a.decrypt(otherID, otherVer, alg, ct)
		wantErr(t, err, "InvalidCiphertext")
		r, err := a.c.AsymmetricEncrypt(&kms.AsymmetricEncryptRequest{KeyId: tea.String(rsaID), KeyVersionId: tea.String(rsaVer),
			Algorithm: tea.String(alg), Plaintext: tea.String(base64.StdEncoding.EncodeToString(pt))})
		mustOK(t, err)
		ct2, _ := base64.StdEncoding.DecodeString(tea.StringValue(r.Body.CiphertextBlob))
		if got, err := a.decrypt(rsaID, rsaVer, alg, ct2); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s: AsymmetricEncrypt's ciphertext decrypted to %x, %v", alg, got, err)
		}
	}
	_, err := a.decrypt(rsaID, rsaVer, "SM2PKE", make([]byte, 256))
	wantErr(t, err, "InvalidParameter")

	smID, smVer := a.createKey("EC_SM2", "ENCRYPT/DECRYPT")
	asn1CT := a.openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", a.publicKeyFile(smID, smVer), "-in", in)
	c, err := wrap.ParseSM2Ciphertext(asn1CT, wrap.SM2ASN1) // OpenSSL writes GM/T 0009; SM2PKE is C1C3C2
	mustOK(t, err)
	raw, err := c.Marshal(wrap.SM2C1C3C2)
	mustOK(t, err)
	if got, err := a.decrypt(smID, smVer, "SM2PKE", raw); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("SM2PKE: OpenSSL ciphertext decrypted to %x, %v; want %x", got, err, pt)
	}
	raw[len(raw)-1] ^= 1
	_, err = a.decrypt(smID, smVer, "SM2PKE", raw)
	wantErr(t, err, "InvalidCiphertext")
}

// TestAsymmetricSignVerifiedByOpenSSL: every signing algorithm signs in
// the token, OpenSSL verifies the signature with GetPublicKey's key, and
// AsymmetricVerify says true for it and false for a flipped one.
func TestAsymmetricSignVerifiedByOpenSSL(t *testing.T) {
	a := newAsymEnv(t)
	digest := sha256.Sum256([]byte("the message"))
	dFile := a.file("digest", digest[:])
	cases := []struct {
		spec, alg string
		opts      []string
	}{
		{"RSA_2048", "RSA_PSS_SHA_256", []string{"-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:32"}},
		{"RSA_2048", "RSA_PKCS1_SHA_256", nil},
		{"EC_P256", "ECDSA_SHA_256", nil},
		{"EC_P256K", "ECDSA_SHA_256", nil},
	}
	for _, c := range cases {
		id, ver := a.createKey(c.spec, "SIGN/VERIFY")
		r, err := a.c.AsymmetricSign(&kms.AsymmetricSignRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
			Algorithm: tea.String(c.alg), Digest: tea.String(base64.StdEncoding.EncodeToString(digest[:]))})
		if err != nil {
			t.Fatalf("%s %s: %v", c.spec, c.alg, err)
		}
		sig, _ := base64.StdEncoding.DecodeString(tea.StringValue(r.Body.Value))
		args := append([]string{"pkeyutl", "-verify", "-pubin", "-inkey", a.publicKeyFile(id, ver), "-in", dFile,
			"-sigfile", a.file("sig", sig), "-pkeyopt", "digest:sha256"}, c.opts...)
		if out := a.openssl(args...); !bytes.Contains(out, []byte("Signature Verified Successfully")) {
			t.Fatalf("%s %s: openssl says %q", c.spec, c.alg, out)
		}
		for i, want := range []bool{true, false} {
			if i == 1 {
				sig[len(sig)/2] ^= 1
			}
			v, err := a.c.AsymmetricVerify(&kms.AsymmetricVerifyRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
				Algorithm: tea.String(c.alg), Digest: tea.String(base64.StdEncoding.EncodeToString(digest[:])),
				Value: tea.String(base64.StdEncoding.EncodeToString(sig))})
			mustOK(t, err)
			if got := tea.BoolValue(v.Body.Value); got != want {
				t.Fatalf("%s %s: AsymmetricVerify = %v, want %v", c.spec, c.alg, got, want)
			}
		}
		_, err = a.c.AsymmetricSign(&kms.AsymmetricSignRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
			Algorithm: tea.String(c.alg), Digest: tea.String(base64.StdEncoding.EncodeToString(digest[:20]))})
		wantErr(t, err, "InvalidParameter")
	}
}

// TestAsymmetricRefusals: SM2DSA is UnsupportedOperation naming the
// missing mechanism; a symmetric operation on an asymmetric key, an
// asymmetric operation on the wrong usage or a disabled key, an unknown
// version and a bad spec/usage are refused with the API's codes.
func TestAsymmetricRefusals(t *testing.T) {
	a := newAsymEnv(t)
	_, err := a.c.CreateKey(&kms.CreateKeyRequest{KeySpec: tea.String("EC_SM2"), KeyUsage: tea.String("SIGN/VERIFY")})
	wantErr(t, err, "UnsupportedOperation")
	_, err = a.c.CreateKey(&kms.CreateKeyRequest{KeySpec: tea.String("EC_P256"), KeyUsage: tea.String("ENCRYPT/DECRYPT")})
	wantErr(t, err, "InvalidParameter")
	_, err = a.c.CreateKey(&kms.CreateKeyRequest{KeySpec: tea.String("RSA_1024")})
	wantErr(t, err, "InvalidParameter")
	id, ver := a.createKey("RSA_2048", "SIGN/VERIFY")
	digest := base64.StdEncoding.EncodeToString(make([]byte, 32))
	_, err = a.c.AsymmetricSign(&kms.AsymmetricSignRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
		Algorithm: tea.String("SM2DSA"), Digest: tea.String(digest)})
	wantErr(t, err, "UnsupportedOperation")
	_, err = a.c.AsymmetricDecrypt(&kms.AsymmetricDecryptRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
		Algorithm: tea.String("RSAES_OAEP_SHA_256"), CiphertextBlob: tea.String(base64.StdEncoding.EncodeToString(make([]byte, 256)))})
	wantErr(t, err, "InvalidParameter")
	_, err = a.c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(id), Plaintext: tea.String("aGk=")})
	wantErr(t, err, "InvalidParameter")
	_, err = a.c.CreateKeyVersion(&kms.CreateKeyVersionRequest{KeyId: tea.String(id)})
	wantErr(t, err, "Rejected.Conflict") // a new version 7 days after the last (TestAsymmetricKeyVersions)
	_, err = a.c.AsymmetricSign(&kms.AsymmetricSignRequest{KeyId: tea.String(id), KeyVersionId: tea.String("0b7e5b1e-0000-4000-8000-000000000000"),
		Algorithm: tea.String("RSA_PSS_SHA_256"), Digest: tea.String(digest)})
	wantErr(t, err, "Forbidden.KeyNotFound")
	_, err = a.c.DisableKey(&kms.DisableKeyRequest{KeyId: tea.String(id)})
	mustOK(t, err)
	_, err = a.c.AsymmetricSign(&kms.AsymmetricSignRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
		Algorithm: tea.String("RSA_PSS_SHA_256"), Digest: tea.String(digest)})
	wantErr(t, err, "Rejected.Disabled")
}
