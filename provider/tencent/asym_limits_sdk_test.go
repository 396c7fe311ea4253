package tencent_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	kms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"
)

// TestTencentSignMessageLimits: a RAW message is signed up to 4,096 bytes
// and refused past it (InvalidParameterValue naming Message, nothing
// signed); an unknown MessageType is refused naming MessageType; a DIGEST
// of the wrong size names Message (the core's Digest).
func TestTencentSignMessageLimits(t *testing.T) {
	a := newAsymTencent(t)
	id, _ := a.key("limits", "ASYMMETRIC_SIGN_VERIFY_ECC")
	sign := func(msgType string, msg []byte) error {
		r := kms.NewSignByAsymmetricKeyRequest()
		r.KeyId, r.Algorithm, r.MessageType = &id, common.StringPtr("ECC"), common.StringPtr(msgType)
		r.Message = common.StringPtr(base64.StdEncoding.EncodeToString(msg))
		_, err := a.c.SignByAsymmetricKey(r)
		return err
	}
	if err := sign("RAW", make([]byte, 4096)); err != nil {
		t.Fatalf("a 4,096-byte RAW message: %v", err)
	}
	for _, c := range []struct {
		what, msgType string
		n             int
		param         string
	}{{"a 4,097-byte RAW message", "RAW", 4097, "Message"}, {"MessageType TEXT", "TEXT", 10, "MessageType"},
		{"a 31-byte DIGEST", "DIGEST", 31, "Message"}} {
		err := sign(c.msgType, make([]byte, c.n))
		wantSDKCode(t, c.what, err, "InvalidParameterValue")
		var e *tcerr.TencentCloudSDKError
		if !errors.As(err, &e) || !strings.Contains(e.Message, c.param) {
			t.Fatalf("%s: %v does not name %s", c.what, err, c.param)
		}
	}
}
