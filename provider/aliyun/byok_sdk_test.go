package aliyun_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/aliyun"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// byokEnv is the v3 SDK against a server whose KMS and signature checks
// runs on a movable clock (import tokens and key material expire); the
// signature checks keep real time, as the SDK signs with it.
type byokEnv struct {
	*asymEnv
	clk *clock
	tok *hsm.Token
}

func newBYOKEnv(t *testing.T) *byokEnv {
	tok := softhsmtest.New(t).Token
	clk := &clock{}
	svc := provider.New(tok, provider.Options{Now: clk.Now})
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: testAK, AccessKeySecret: testSecret, Policy: wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}})
	srv := httptest.NewServer(aliyun.New(aliyun.Config{KMS: svc, Keys: keys, Observer: &records{}, Limiter: &limiter{}}))
	t.Cleanup(srv.Close)
	c, err := kms.NewClient(&openapi.Config{Endpoint: tea.String(strings.TrimPrefix(srv.URL, "http://")), Protocol: tea.String("HTTP"),
		RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(testAK), AccessKeySecret: tea.String(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return &byokEnv{asymEnv: &asymEnv{t: t, c: c, dir: t.TempDir()}, clk: clk, tok: tok}
}

func (b *byokEnv) externalKey() string {
	b.t.Helper()
	r, err := b.c.CreateKey(&kms.CreateKeyRequest{Origin: tea.String("EXTERNAL")})
	mustOK(b.t, err)
	if st := tea.StringValue(r.Body.KeyMetadata.KeyState); st != "PendingImport" {
		b.t.Fatalf("new EXTERNAL key is %s, want PendingImport", st)
	}
	return tea.StringValue(r.Body.KeyMetadata.KeyId)
}

// params calls GetParametersForImport: the wrapping public key (DER file)
// and the import token.
func (b *byokEnv) params(id, spec, alg string) (pubFile, token string) {
	b.t.Helper()
	r, err := b.c.GetParametersForImport(&kms.GetParametersForImportRequest{KeyId: tea.String(id),
		WrappingKeySpec: tea.String(spec), WrappingAlgorithm: tea.String(alg)})
	mustOK(b.t, err)
	exp, err := time.Parse("2006-01-02T15:04:05Z", tea.StringValue(r.Body.TokenExpireTime))
	if err != nil || exp.Sub(b.clk.Now()) < 23*time.Hour || exp.Sub(b.clk.Now()) > 25*time.Hour {
		b.t.Fatalf("TokenExpireTime %q: want 24 h from now (%v)", tea.StringValue(r.Body.TokenExpireTime), err)
	}
	return b.file(id+".der", b64(b.t, tea.StringValue(r.Body.PublicKey))), tea.StringValue(r.Body.ImportToken)
}

// wrapMaterial has OpenSSL encrypt material under the wrapping key.
func (b *byokEnv) wrapMaterial(pubFile, alg string, material []byte) []byte {
	b.t.Helper()
	args := []string{"pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", pubFile, "-in", b.file("material", material)}
	switch alg {
	case "RSAES_PKCS1_V1_5":
		args = append(args, "-pkeyopt", "rsa_padding_mode:pkcs1")
	case "RSAES_OAEP_SHA_1":
		args = append(args, "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1")
	case "RSAES_OAEP_SHA_256":
		args = append(args, "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
	}
	ct := b.openssl(args...)
	if alg == "SM2PKE" { // OpenSSL writes GM/T 0009 ASN.1; SM2PKE is C1C3C2
		c, err := wrap.ParseSM2Ciphertext(ct, wrap.SM2ASN1)
		mustOK(b.t, err)
		raw, err := c.Marshal(wrap.SM2C1C3C2)
		mustOK(b.t, err)
		return raw
	}
	return ct
}

func (b *byokEnv) importMaterial(id, token string, ct []byte, expire int64) error {
	req := &kms.ImportKeyMaterialRequest{KeyId: tea.String(id), ImportToken: tea.String(token),
		EncryptedKeyMaterial: tea.String(base64.StdEncoding.EncodeToString(ct))}
	if expire != 0 {
		req.KeyMaterialExpireUnix = tea.Int64(expire)
	}
	_, err := b.c.ImportKeyMaterial(req)
	return err
}

// encryptAndOpen has the KMS Encrypt under the key and opens the blob with
// the material here: the KMS holds the same key.
func (b *byokEnv) encryptAndOpen(id string, material []byte) error {
	b.t.Helper()
	r, err := b.c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(id), Plaintext: tea.String(base64.StdEncoding.EncodeToString([]byte("same key")))})
	if err != nil {
		return err
	}
	blob, err := wrap.ParseBlob(b64(b.t, tea.StringValue(r.Body.CiphertextBlob)))
	mustOK(b.t, err)
	blk, _ := aes.NewCipher(material)
	g, _ := cipher.NewGCM(blk)
	pt, err := g.Open(nil, blob.IV[:], blob.Sealed, wrap.AAD(blob.Header(), nil))
	if err != nil || string(pt) != "same key" {
		b.t.Fatalf("the KMS's blob does not open with the imported material: %q %v", pt, err)
	}
	return nil
}

func (b *byokEnv) state(id string) string {
	r, err := b.c.DescribeKey(&kms.DescribeKeyRequest{KeyId: tea.String(id)})
	mustOK(b.t, err)
	return tea.StringValue(r.Body.KeyMetadata.KeyState)
}

// TestImportKeyMaterialOpenSSL: for every wrapping algorithm, OpenSSL
// wraps 32 bytes of material under GetParametersForImport's public key,
// ImportKeyMaterial takes it, and the KMS's Encrypt opens with the
// material here; the token cannot be used twice.
func TestImportKeyMaterialOpenSSL(t *testing.T) {
	b := newBYOKEnv(t)
	for alg, spec := range map[string]string{"RSAES_PKCS1_V1_5": "RSA_2048", "RSAES_OAEP_SHA_1": "RSA_2048",
		"RSAES_OAEP_SHA_256": "RSA_2048", "SM2PKE": "EC_SM2"} {
		id := b.externalKey()
		_, err := b.c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(id), Plaintext: tea.String("aGk=")})
		wantErr(t, err, "Rejected.PendingImport")
		material := make([]byte, 32)
		rand.Read(material)
		pub, token := b.params(id, spec, alg)
		ct := b.wrapMaterial(pub, alg, material)
		if err := b.importMaterial(id, token, ct, 0); err != nil {
			t.Fatalf("%s: ImportKeyMaterial: %v", alg, err)
		}
		if st := b.state(id); st != "Enabled" {
			t.Fatalf("%s: imported key is %s", alg, st)
		}
		mustOK(t, b.encryptAndOpen(id, material))
		_, err = b.c.DeleteKeyMaterial(&kms.DeleteKeyMaterialRequest{KeyId: tea.String(id)})
		mustOK(t, err)
		wantErr(t, b.importMaterial(id, token, ct, 0), "InvalidParameter") // the token was used
		if st := b.state(id); st != "PendingImport" {
			t.Fatalf("%s: after DeleteKeyMaterial the key is %s", alg, st)
		}
	}
}

// TestImportKeyMaterialHostile: a forged, expired or another key's token,
// material wrapped for another key, material of the wrong length, other
// material on a re-import: each InvalidParameter naming the parameter,
// and the token holds exactly the objects it held before. Material that
// expires makes the key PendingImport; the same material imported again
// opens the blobs made before.
func TestImportKeyMaterialHostile(t *testing.T) {
	b := newBYOKEnv(t)
	const alg = "RSAES_OAEP_SHA_256"
	idA, idB := b.externalKey(), b.externalKey()
	pubA, tokA := b.params(idA, "RSA_2048", alg)
	_, tokB := b.params(idB, "RSA_2048", alg)
	material := make([]byte, 32)
	rand.Read(material)
	ctA := b.wrapMaterial(pubA, alg, material)
	forged := b64(t, tokA)
	forged[len(forged)-40] ^= 1 // inside the payload: the key id or the wrapping key id
	objects := func() int {
		n, err := b.tok.CountObjects(context.Background())
		mustOK(t, err)
		return n
	}
	before := objects()
	for name, call := range map[string]func() error{
		"forged token":         func() error { return b.importMaterial(idA, base64.StdEncoding.EncodeToString(forged), ctA, 0) },
		"another key's token":  func() error { return b.importMaterial(idB, tokA, ctA, 0) },
		"material for A to B":  func() error { return b.importMaterial(idB, tokB, ctA, 0) },
		"16-byte material":     func() error { return b.importMaterial(idA, tokA, b.wrapMaterial(pubA, alg, material[:16]), 0) },
		"truncated ciphertext": func() error { return b.importMaterial(idA, tokA, ctA[:255], 0) },
		"expiry in the past":   func() error { return b.importMaterial(idA, tokA, ctA, time.Now().Add(-time.Hour).Unix()) },
		"expired token": func() error {
			b.clk.Set(25 * time.Hour)
			defer b.clk.Set(0)
			return b.importMaterial(idA, tokA, ctA, 0)
		},
	} {
		wantErr(t, call(), "InvalidParameter")
		if n := objects(); n != before {
			t.Fatalf("%s: the token has %d objects, had %d", name, n, before)
		}
		if b.state(idA) != "PendingImport" || b.state(idB) != "PendingImport" {
			t.Fatalf("%s: a key left PendingImport", name)
		}
	}
	// Material that expires in an hour: two hours on, the key is PendingImport.
	mustOK(t, b.importMaterial(idA, tokA, ctA, time.Now().Add(time.Hour).Unix()))
	mustOK(t, b.encryptAndOpen(idA, material))
	r, err := b.c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(idA), Plaintext: tea.String("aGk=")})
	mustOK(t, err)
	b.clk.Set(2 * time.Hour)
	_, err = b.c.Decrypt(&kms.DecryptRequest{CiphertextBlob: r.Body.CiphertextBlob})
	wantErr(t, err, "Rejected.PendingImport")
	if st := b.state(idA); st != "PendingImport" {
		t.Fatalf("expired material: the key is %s", st)
	}
	// Imported again: other material is refused, the same material works
	// and the blob made before decrypts.
	pubA2, tokA2 := b.params(idA, "RSA_2048", alg)
	other := make([]byte, 32)
	rand.Read(other)
	wantErr(t, b.importMaterial(idA, tokA2, b.wrapMaterial(pubA2, alg, other), 0), "InvalidParameter")
	mustOK(t, b.importMaterial(idA, tokA2, b.wrapMaterial(pubA2, alg, material), 0))
	d, err := b.c.Decrypt(&kms.DecryptRequest{CiphertextBlob: r.Body.CiphertextBlob})
	mustOK(t, err)
	if !bytes.Equal(b64(t, tea.StringValue(d.Body.Plaintext)), []byte("hi")) {
		t.Fatalf("re-imported key decrypts to %q", tea.StringValue(d.Body.Plaintext))
	}
}

// TestImportTokensAreBounded: a key has at most 8 live wrapping keys in
// the token (GetParametersForImport is then Rejected.Conflict); expired
// ones are destroyed before counting, so a day later it works again and
// the token holds only the new one.
func TestImportTokensAreBounded(t *testing.T) {
	b := newBYOKEnv(t)
	id := b.externalKey()
	objects := func() int {
		n, err := b.tok.CountObjects(context.Background())
		mustOK(t, err)
		return n
	}
	b.params(id, "EC_SM2", "SM2PKE")
	before := objects() - 2 // the key's metadata and the import-token HMAC key
	for range 7 {
		b.params(id, "EC_SM2", "SM2PKE")
	}
	_, err := b.c.GetParametersForImport(&kms.GetParametersForImportRequest{KeyId: tea.String(id),
		WrappingKeySpec: tea.String("EC_SM2"), WrappingAlgorithm: tea.String("SM2PKE")})
	wantErr(t, err, "Rejected.Conflict")
	if n := objects(); n != before+16 {
		t.Fatalf("%d objects after 8 tokens, want %d", n, before+16)
	}
	b.clk.Set(25 * time.Hour)
	b.params(id, "EC_SM2", "SM2PKE")
	if n := objects(); n != before+2 {
		t.Fatalf("%d objects a day later, want %d (the expired wrapping keys destroyed)", n, before+2)
	}
}
