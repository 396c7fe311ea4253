package aliyun_test

import (
	"crypto/rand"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

// TestKeyMaterialExpiresOnTheRealClock: material imported with a
// KeyMaterialExpireUnix two seconds ahead works until then; once reached
// (polled, bounded: no timed assertion) DescribeKey says PendingImport and
// Encrypt is Rejected.PendingImport. (TestImportKeyMaterialHostile moves a
// clock instead.)
func TestKeyMaterialExpiresOnTheRealClock(t *testing.T) {
	b := newBYOKEnv(t)
	id := b.externalKey()
	pub, token := b.params(id, "RSA_2048", "RSAES_OAEP_SHA_256")
	material := make([]byte, 32)
	rand.Read(material)
	mustOK(t, b.importMaterial(id, token, b.wrapMaterial(pub, "RSAES_OAEP_SHA_256", material), time.Now().Add(2*time.Second).Unix()))
	mustOK(t, b.encryptAndOpen(id, material))
	for i := 0; b.state(id) != "PendingImport"; i++ {
		if i == 300 { // 30 s: far past the 2 s
			t.Fatalf("the key is still %s 30 s after KeyMaterialExpireUnix", b.state(id))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err := b.c.Encrypt(&kms.EncryptRequest{KeyId: tea.String(id), Plaintext: tea.String("aGk=")})
	wantErr(t, err, "Rejected.PendingImport")
}
