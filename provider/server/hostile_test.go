package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	util "github.com/alibabacloud-go/tea-utils/v2/service"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/emmansun/gmsm/sm2"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerrors "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/tencent"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// hostileKeys are malformed public keys, as base64 DER and PEM.
type hostileKeys struct{ blob, pem map[string]string }

func makeHostileKeys(t *testing.T) hostileKeys {
	h := hostileKeys{blob: map[string]string{}, pem: map[string]string{}}
	add := func(name string, der []byte) {
		h.blob[name] = base64.StdEncoding.EncodeToString(der)
		h.pem[name] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	r1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ := x509.MarshalPKIXPublicKey(&r1024.PublicKey)
	add("rsa-1024", der)
	r2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	e3 := rsa.PublicKey{N: r2048.N, E: 3}
	der, _ = x509.MarshalPKIXPublicKey(&e3)
	add("rsa-e3", der)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ = x509.MarshalPKIXPublicKey(&p256.PublicKey)
	add("ec-p256", der)
	s, _ := sm2.GenerateKey(rand.Reader)
	good, _ := wrap.MarshalPublicKeyDER(&s.PublicKey)
	off := bytes.Clone(good)
	off[len(off)-1] ^= 1
	add("sm2-off-curve", off)
	inf := bytes.Clone(good)
	copy(inf[len(inf)-64:], make([]byte, 64))
	add("sm2-infinity", inf)
	good2048, _ := wrap.MarshalPublicKeyDER(&r2048.PublicKey)
	add("rsa-trailing-bytes", append(bytes.Clone(good2048), 0))
	add("garbage-der", []byte{0x30, 0x03, 0x02, 0x01, 0x01})
	h.blob["rsa-2048-ok"] = base64.StdEncoding.EncodeToString(good2048)
	h.blob["sm2-ok"] = base64.StdEncoding.EncodeToString(good)
	return h
}

type hostileCase struct {
	name, action string
	params       map[string]string
	code         string
}

// More than 150 malformed requests across both wire APIs, each answered with
// its specific code, none with a 5xx, and the server still serving.
func TestHostileInput(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	capture := &capturing{next: server.New(server.Config{KMS: kms, Keys: keys})}
	srv := httptest.NewServer(capture)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := t.Context()
	k, err := kms.CreateKey(ctx, &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := k.KeyMetadata.KeyId
	other, _ := kms.CreateKey(ctx, &provider.CreateKeyRequest{})
	g, _ := kms.GenerateDataKey(ctx, &provider.GenerateDataKeyRequest{KeyId: id, EncryptionContext: wrap.EncryptionContext{"a": "b"}})
	g2, _ := kms.GenerateDataKey(ctx, &provider.GenerateDataKeyRequest{KeyId: other.KeyMetadata.KeyId})
	raw, _ := base64.StdEncoding.DecodeString(g.CiphertextBlob)
	raw2, _ := base64.StdEncoding.DecodeString(g2.CiphertextBlob)
	blob := func(f func([]byte) []byte) string { return base64.StdEncoding.EncodeToString(f(bytes.Clone(raw))) }
	hk := makeHostileKeys(t)

	blobs := map[string]string{
		"truncated-10": blob(func(b []byte) []byte { return b[:10] }),
		"truncated-44": blob(func(b []byte) []byte { return b[:44] }),
		"version-0":    blob(func(b []byte) []byte { b[0] = 0; return b }),
		"version-2":    blob(func(b []byte) []byte { b[0] = 2; return b }),
		"version-ff":   blob(func(b []byte) []byte { b[0] = 0xff; return b }),
		"swapped-iv":   blob(func(b []byte) []byte { copy(b[17:29], raw2[17:29]); return b }),
		"other-ver-id": blob(func(b []byte) []byte { copy(b[1:17], raw2[1:17]); return b }),
		"unknown-ver":  blob(func(b []byte) []byte { b[3] ^= 0x5a; return b }),
		"flipped-tag":  blob(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"flipped-body": blob(func(b []byte) []byte { b[30] ^= 1; return b }),
		"extended":     blob(func(b []byte) []byte { return append(b, 0) }),
		"oversized":    base64.StdEncoding.EncodeToString(append([]byte{1}, bytes.Repeat([]byte{7}, 20000)...)),
		"not-base64":   "%%%not base64%%%",
		"url-base64":   strings.NewReplacer("+", "-", "/", "_").Replace(g.CiphertextBlob) + "-_",
		"empty-bytes":  "AA==",
	}
	var ali []hostileCase
	for name, b := range blobs {
		code := "InvalidCiphertext"
		ali = append(ali, hostileCase{"Decrypt/blob " + name, "Decrypt", map[string]string{"CiphertextBlob": b, "EncryptionContext": `{"a":"b"}`}, code})
	}
	contexts := map[string]string{
		"not-json": "not json", "array": `[]`, "number-value": `{"a":1}`, "nested": `{"a":{"b":"c"}}`, "null-value": `{"a":null}`,
		"duplicate-key": `{"a":"1","a":"2"}`, "trailing": `{"a":"b"} x`, "deep": strings.Repeat(`{"a":`, 500) + `"x"` + strings.Repeat("}", 500),
		"too-long": `{"a":"` + strings.Repeat("x", 9000) + `"}`, "non-utf8": "{\"a\":\"\xff\xfe\"}", "bool": `{"a":true}`, "string": `"ab"`,
	}
	for name, ec := range contexts {
		ali = append(ali, hostileCase{"GenerateDataKey/context " + name, "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": ec}, "InvalidParameter"})
		ali = append(ali, hostileCase{"Decrypt/context " + name, "Decrypt", map[string]string{"CiphertextBlob": g.CiphertextBlob, "EncryptionContext": ec}, "InvalidParameter"})
	}
	for _, n := range []string{"0", "-1", "1025", "99999999999", "abc", "1.5", "0x20", "1e3", " 32", "-0x1"} {
		ali = append(ali, hostileCase{"GenerateDataKey/NumberOfBytes " + n, "GenerateDataKey", map[string]string{"KeyId": id, "NumberOfBytes": n}, "InvalidParameter"})
	}
	for _, ks := range []string{"AES_512", "aes_256", "RSA_2048", "AES_256 "} {
		ali = append(ali, hostileCase{"GenerateDataKey/KeySpec " + ks, "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": ks}, "InvalidParameter"})
	}
	for name, kid := range map[string]string{"space": "has space", "long": strings.Repeat("k", 200), "bad-arn": "acs:kms:x",
		"arn-secret": "acs:kms:r:1:secret/x", "alias-empty": "alias/", "alias-space": "alias/a b", "non-utf8": "\xff\xfe", "quote": `k"; DROP`} {
		ali = append(ali, hostileCase{"GenerateDataKey/KeyId " + name, "GenerateDataKey", map[string]string{"KeyId": kid}, "InvalidParameter"})
	}
	ali = append(ali,
		hostileCase{"GenerateDataKey/KeyId unknown", "GenerateDataKey", map[string]string{"KeyId": "00000000-0000-4000-8000-000000000000"}, "Forbidden.KeyNotFound"},
		hostileCase{"GenerateDataKey/alias unknown", "GenerateDataKey", map[string]string{"KeyId": "alias/nope"}, "Forbidden.AliasNotFound"},
		hostileCase{"GenerateDataKey/unknown field", "GenerateDataKey", map[string]string{"KeyId": id, "Bogus": "1"}, "InvalidParameter"},
		hostileCase{"GenerateDataKey/DryRun junk", "GenerateDataKey", map[string]string{"KeyId": id, "DryRun": "maybe"}, "InvalidParameter"},
		hostileCase{"Encrypt/plaintext not base64", "Encrypt", map[string]string{"KeyId": id, "Plaintext": "%%"}, "InvalidParameter"},
		hostileCase{"Encrypt/plaintext 6145 bytes", "Encrypt", map[string]string{"KeyId": id, "Plaintext": base64.StdEncoding.EncodeToString(make([]byte, 6145))}, "InvalidParameter"},
		hostileCase{"Encrypt/plaintext empty", "Encrypt", map[string]string{"KeyId": id, "Plaintext": ""}, "InvalidParameter"},
		hostileCase{"ScheduleKeyDeletion/window 6", "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "6"}, "InvalidParameter"},
		hostileCase{"ScheduleKeyDeletion/window -7", "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "-7"}, "InvalidParameter"},
		hostileCase{"ScheduleKeyDeletion/window 367", "ScheduleKeyDeletion", map[string]string{"KeyId": id, "PendingWindowInDays": "367"}, "InvalidParameter"},
		hostileCase{"CreateKey/KeySpec", "CreateKey", map[string]string{"KeySpec": "Aliyun_AES_512"}, "InvalidParameter"},
		hostileCase{"CreateKey/rotation 1d", "CreateKey", map[string]string{"EnableAutomaticRotation": "true", "RotationInterval": "86400s"}, "InvalidParameter"},
		hostileCase{"CreateAlias/no prefix", "CreateAlias", map[string]string{"AliasName": "payments", "KeyId": id}, "InvalidParameter"},
		hostileCase{"CreateAlias/reserved", "CreateAlias", map[string]string{"AliasName": "alias/acs-x", "KeyId": id}, "InvalidParameter"},
		hostileCase{"ListKeys/PageSize 101", "ListKeys", map[string]string{"PageSize": "101"}, "InvalidParameter"},
		hostileCase{"ListKeys/PageNumber -1", "ListKeys", map[string]string{"PageNumber": "-1"}, "InvalidParameter"},
		hostileCase{"ListKeys/PageSize 0", "ListKeys", map[string]string{"PageSize": "0"}, "InvalidParameter"},
		hostileCase{"ListKeys/PageNumber 0", "ListKeys", map[string]string{"PageNumber": "0"}, "InvalidParameter"},
		hostileCase{"ListAliases/PageSize 0", "ListAliases", map[string]string{"PageSize": "0"}, "InvalidParameter"},
		hostileCase{"ListKeyVersions/PageSize 0", "ListKeyVersions", map[string]string{"KeyId": id, "PageSize": "0"}, "InvalidParameter"},
		hostileCase{"ListAliasesByKeyId/PageNumber 0", "ListAliasesByKeyId", map[string]string{"KeyId": id, "PageNumber": "0"}, "InvalidParameter"},
		hostileCase{"GenerateDataKeyWithoutPlaintext/NumberOfBytes 0", "GenerateDataKeyWithoutPlaintext", map[string]string{"KeyId": id, "NumberOfBytes": "0"}, "InvalidParameter"},
		hostileCase{"GenerateDataKeyWithoutPlaintext/EncryptionPublicKey", "GenerateDataKeyWithoutPlaintext", map[string]string{"KeyId": id, "EncryptionPublicKey": hk.pem["rsa-1024"]}, "InvalidParameter"},
		hostileCase{"DescribeKey/DryRun", "DescribeKey", map[string]string{"KeyId": id, "DryRun": "true"}, "InvalidParameter"},
		hostileCase{"DisableKey/DryRun", "DisableKey", map[string]string{"KeyId": id, "DryRun": "true"}, "InvalidParameter"},
		hostileCase{"CreateKey/DryRun", "CreateKey", map[string]string{"DryRun": "true"}, "InvalidParameter"},
		hostileCase{"DescribeKey/ARN of another region", "DescribeKey", map[string]string{"KeyId": "acs:kms:cn-shanghai:999:key/" + id}, "Forbidden.KeyNotFound"},
		hostileCase{"GenerateDataKey/ARN of another account", "GenerateDataKey", map[string]string{"KeyId": "acs:kms:cn-hangzhou:999:key/" + id}, "Forbidden.KeyNotFound"},
		hostileCase{"CreateAlias/colon", "CreateAlias", map[string]string{"AliasName": "alias/a:b", "KeyId": id}, "InvalidParameter"},
		hostileCase{"UpdateRotationPolicy/interval 6d", "UpdateRotationPolicy", map[string]string{"KeyId": id, "EnableAutomaticRotation": "true", "RotationInterval": "144h"}, "InvalidParameter"},
		hostileCase{"UpdateRotationPolicy/interval without unit", "UpdateRotationPolicy", map[string]string{"KeyId": id, "EnableAutomaticRotation": "true", "RotationInterval": "604800"}, "InvalidParameter"},
		hostileCase{"UpdateRotationPolicy/interval with rotation off", "UpdateRotationPolicy", map[string]string{"KeyId": id, "RotationInterval": "30d"}, "InvalidParameter"},
		hostileCase{"ReEncrypt/WrappingKeySpec without PublicKeyBlob", "ReEncrypt", map[string]string{"CiphertextBlob": g.CiphertextBlob, "SourceEncryptionContext": `{"a":"b"}`, "DestinationKeyId": id, "WrappingKeySpec": "RSA_2048"}, "InvalidParameter"},
	)
	export := func(pub, spec, alg string) map[string]string {
		return map[string]string{"KeyId": id, "PublicKeyBlob": pub, "WrappingKeySpec": spec, "WrappingAlgorithm": alg}
	}
	for name, pub := range hk.blob {
		if strings.HasSuffix(name, "-ok") {
			continue
		}
		spec, alg := "RSA_2048", "RSAES_OAEP_SHA_256"
		if strings.HasPrefix(name, "sm2") || strings.HasPrefix(name, "ec") {
			spec, alg = "EC_SM2", "SM2PKE"
		}
		ali = append(ali, hostileCase{"GenerateAndExportDataKey/key " + name, "GenerateAndExportDataKey", export(pub, spec, alg), "InvalidParameter"})
	}
	for name, p := range map[string]map[string]string{
		"spec RSA_1024":       export(hk.blob["rsa-2048-ok"], "RSA_1024", "RSAES_OAEP_SHA_256"),
		"spec lower":          export(hk.blob["rsa-2048-ok"], "rsa_2048", "RSAES_OAEP_SHA_256"),
		"spec mismatch":       export(hk.blob["rsa-2048-ok"], "RSA_3072", "RSAES_OAEP_SHA_256"),
		"spec EC for RSA key": export(hk.blob["rsa-2048-ok"], "EC_SM2", "SM2PKE"),
		"alg SHA_512":         export(hk.blob["rsa-2048-ok"], "RSA_2048", "RSAES_OAEP_SHA_512"),
		"alg tencent-only":    export(hk.blob["rsa-2048-ok"], "RSA_2048", "RSAES_PKCS1_V1_5"),
		"alg SM2 for RSA":     export(hk.blob["rsa-2048-ok"], "RSA_2048", "SM2PKE"),
		"alg RSA for SM2":     export(hk.blob["sm2-ok"], "EC_SM2", "RSAES_OAEP_SHA_1"),
		"blob not base64":     export("%%%", "RSA_2048", "RSAES_OAEP_SHA_256"),
		"blob empty":          export("", "RSA_2048", "RSAES_OAEP_SHA_256"),
		"blob PEM":            export(hk.pem["rsa-1024"], "RSA_2048", "RSAES_OAEP_SHA_256"),
		"too many bytes": func() map[string]string {
			p := export(hk.blob["rsa-2048-ok"], "RSA_2048", "RSAES_OAEP_SHA_256")
			p["NumberOfBytes"] = "191"
			return p
		}(),
		"spec missing":        export(hk.blob["rsa-2048-ok"], "", "RSAES_OAEP_SHA_256"),
		"algorithm missing":   export(hk.blob["rsa-2048-ok"], "RSA_2048", ""),
		"sm2 key as RSA spec": export(hk.blob["sm2-ok"], "RSA_2048", "RSAES_OAEP_SHA_256"),
		"export blob mangled": {"CiphertextBlob": "AA==", "PublicKeyBlob": hk.blob["rsa-2048-ok"], "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"},
	} {
		code := "InvalidParameter"
		action := "GenerateAndExportDataKey"
		if strings.HasPrefix(name, "export ") {
			action, code = "ExportDataKey", "InvalidCiphertext"
		}
		ali = append(ali, hostileCase{action + "/" + name, action, p, code})
	}

	aliClient, err := openapi.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"), RegionId: tea.String("cn-hangzhou"),
		AccessKeyId: tea.String(aliID), AccessKeySecret: tea.String(aliSecret)})
	if err != nil {
		t.Fatal(err)
	}
	aliCall := func(action string, params map[string]string) (string, int) {
		q := map[string]*string{}
		for k, v := range params {
			q[k] = tea.String(v)
		}
		_, err := aliClient.CallApi(&openapi.Params{Action: tea.String(action), Version: tea.String("2016-01-20"), Protocol: tea.String("HTTP"),
			Pathname: tea.String("/"), Method: tea.String("POST"), AuthType: tea.String("AK"), Style: tea.String("RPC"),
			ReqBodyType: tea.String("formData"), BodyType: tea.String("json")}, &openapi.OpenApiRequest{Query: q}, &util.RuntimeOptions{})
		if err == nil {
			return "", 200
		}
		se, ok := err.(*tea.SDKError)
		if !ok {
			return "not an SDK error: " + err.Error(), 0
		}
		return tea.StringValue(se.Code), tea.IntValue(se.StatusCode)
	}

	// Tencent: the same kinds of input on its wire (its own limits and codes).
	var tc []hostileCase
	for name, b := range blobs {
		tc = append(tc, hostileCase{"Decrypt/blob " + name, "Decrypt", map[string]string{"CiphertextBlob": b, "EncryptionContext": `{"a":"b"}`}, "InvalidParameterValue.InvalidCiphertext"})
	}
	for name, ec := range contexts {
		if name == "non-utf8" {
			continue // the Tencent SDK's JSON encoder turns invalid UTF-8 into U+FFFD before sending
		}
		tc = append(tc, hostileCase{"GenerateDataKey/context " + name, "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": ec}, "InvalidParameterValue"})
	}
	for name, pemText := range hk.pem {
		tc = append(tc, hostileCase{"GenerateDataKey/public key " + name, "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_256", "EncryptionPublicKey": pemText, "EncryptionAlgorithm": "SM2"}, "FailedOperation.EncryptionError"})
	}
	tc = append(tc,
		hostileCase{"GenerateDataKey/KeyId junk", "GenerateDataKey", map[string]string{"KeyId": "has space", "KeySpec": "AES_256"}, "InvalidParameterValue.InvalidKeyId"},
		hostileCase{"GenerateDataKey/KeyId unknown", "GenerateDataKey", map[string]string{"KeyId": "00000000-0000-4000-8000-000000000000", "KeySpec": "AES_256"}, "ResourceUnavailable.CmkNotFound"},
		hostileCase{"GenerateDataKey/KeySpec", "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_512"}, "InvalidParameterValue"},
		hostileCase{"GenerateDataKey/algorithm", "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_256", "EncryptionPublicKey": hk.pem["rsa-e3"], "EncryptionAlgorithm": "RSAES_OAEP_SHA_512"}, "FailedOperation.EncryptionError"},
		hostileCase{"GenerateDataKey/unknown field", "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_256", "Bogus": "1"}, "UnknownParameter"},
		hostileCase{"Encrypt/plaintext not base64", "Encrypt", map[string]string{"KeyId": id, "Plaintext": "%%"}, "InvalidParameterValue.InvalidPlaintext"},
		hostileCase{"Encrypt/plaintext 4097", "Encrypt", map[string]string{"KeyId": id, "Plaintext": base64.StdEncoding.EncodeToString(make([]byte, 4097))}, "InvalidParameterValue.InvalidPlaintext"},
	)
	for name, kid := range map[string]string{"space": "has space", "long": strings.Repeat("k", 200), "bad-arn": "acs:kms:x",
		"alias-empty": "alias/", "quote": `k"; DROP`, "slash": "a/b/c"} {
		tc = append(tc, hostileCase{"GenerateDataKey/KeyId " + name, "GenerateDataKey", map[string]string{"KeyId": kid, "KeySpec": "AES_256"}, "InvalidParameterValue.InvalidKeyId"})
	}
	for _, ks := range []string{"AES_512", "aes_256", "RSA_2048", "AES_256 ", "SM4"} {
		tc = append(tc, hostileCase{"GenerateDataKey/KeySpec " + ks, "GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": ks}, "InvalidParameterValue"})
	}
	tcCommon := common.NewCommonClient(common.NewCredential(tcID, tcSecret), "ap-guangzhou", tcProfile(addr))
	tcCall := func(action string, params map[string]string) string {
		req := tchttp.NewCommonRequest("kms", "2019-01-18", action)
		m := map[string]any{}
		for k, v := range params {
			m[k] = v
		}
		if err := req.SetActionParameters(m); err != nil {
			t.Fatal(err)
		}
		err := tcCommon.Send(req, tchttp.NewCommonResponse())
		if err == nil {
			return ""
		}
		te, ok := err.(*tcerrors.TencentCloudSDKError)
		if !ok {
			return "not an SDK error: " + err.Error()
		}
		return te.Code
	}

	tried := 0
	for _, c := range ali {
		tried++
		code, status := aliCall(c.action, c.params)
		if code != c.code {
			t.Errorf("alibaba %s: code %q, want %q", c.name, code, c.code)
		}
		if status >= 500 {
			t.Errorf("alibaba %s: HTTP %d", c.name, status)
		}
	}
	for _, c := range tc {
		tried++
		if code := tcCall(c.action, c.params); code != c.code {
			t.Errorf("tencent %s: code %q, want %q", c.name, code, c.code)
		}
	}
	// Signed requests replayed and re-targeted: an SDK's request as it
	// reached the server, sent again as it was or changed after signing.
	otherID := other.KeyMetadata.KeyId
	if code, _ := aliCall("GenerateDataKey", map[string]string{"KeyId": id}); code != "" {
		t.Fatalf("GenerateDataKey: %s", code)
	}
	aliReq := capture.lastRequest()
	if code := tcCall("GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_256"}); code != "" {
		t.Fatalf("Tencent GenerateDataKey: %s", code)
	}
	tcReq := capture.lastRequest()
	replace := func(old, new string) func(*capturedRequest) {
		return func(c *capturedRequest) {
			c.target = strings.ReplaceAll(c.target, old, new)
			c.body = bytes.ReplaceAll(c.body, []byte(old), []byte(new))
			for k, vs := range c.header {
				for i := range vs {
					if k != "Authorization" {
						vs[i] = strings.ReplaceAll(vs[i], old, new)
					}
				}
			}
		}
	}
	signed := []struct {
		name   string
		req    capturedRequest
		change func(*capturedRequest)
		code   string
	}{
		{"alibaba replayed as sent", aliReq, nil, "SignatureNonceUsed"},
		{"alibaba re-targeted to another action", aliReq, replace("GenerateDataKey", "DescribeKey"), "SignatureDoesNotMatch"},
		{"alibaba re-targeted to another key", aliReq, replace(id, otherID), "SignatureDoesNotMatch"},
		{"alibaba under another access key id", aliReq, func(c *capturedRequest) {
			replace(aliID, "LTAI5tSomeoneElse000001")(c)
			c.header.Set("Authorization", strings.ReplaceAll(c.header.Get("Authorization"), aliID, "LTAI5tSomeoneElse000001"))
		}, "InvalidAccessKeyId.NotFound"},
		{"tencent body changed", tcReq, replace(id, otherID), "AuthFailure.SignatureFailure"},
		{"tencent timestamp changed", tcReq, func(c *capturedRequest) {
			ts, _ := strconv.ParseInt(c.header.Get("X-TC-Timestamp"), 10, 64)
			c.header.Set("X-TC-Timestamp", strconv.FormatInt(ts+1, 10))
		}, "AuthFailure.SignatureFailure"},
		{"tencent under another SecretId", tcReq, func(c *capturedRequest) {
			c.header.Set("Authorization", strings.Replace(c.header.Get("Authorization"), tcID, "AKIDSomeoneElse0000000000000000000001", 1))
		}, "AuthFailure.SecretIdNotFound"},
		{"tencent signature truncated", tcReq, func(c *capturedRequest) {
			a := c.header.Get("Authorization")
			c.header.Set("Authorization", a[:len(a)-2])
		}, "AuthFailure.InvalidAuthorization"},
	}
	for _, c := range signed {
		tried++
		r := c.req.clone()
		if c.change != nil {
			c.change(&r)
		}
		if code, status := r.send(t, srv.URL); code != c.code || status >= 500 {
			t.Errorf("%s: code %q (HTTP %d), want %q", c.name, code, status, c.code)
		}
	}
	// A captured Tencent request re-targeted to another action (X-TC-Action
	// is not signed) after the grace an honest caller's identical
	// signatures get (at most 2 × tencent.RetargetGrace).
	time.Sleep(2*tencent.RetargetGrace + 100*time.Millisecond)
	for _, action := range []string{"DisableKey", "ScheduleKeyDeletion", "Encrypt"} {
		tried++
		r := tcReq.clone()
		r.header.Set("X-TC-Action", action)
		if code, _ := r.send(t, srv.URL); code != "AuthFailure.SignatureFailure" {
			t.Errorf("tencent re-targeted to %s after %s: code %q, want AuthFailure.SignatureFailure", action, tencent.RetargetGrace, code)
		}
	}

	// A 10 MB EncryptionContext is refused before it is read.
	tried++
	// (The Alibaba SDK puts it in the query string: Go's HTTP server answers
	// 431 Request Header Fields Too Large before any handler runs.)
	if code, status := aliCall("GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":"` + strings.Repeat("x", 10<<20) + `"}`}); status != 413 && code != "InvalidParameter" && !strings.Contains(code, "431") {
		t.Errorf("10 MB context: %s %d", code, status)
	}
	t.Logf("%d hostile requests tried (alibaba %d, tencent %d, signed requests replayed or re-targeted %d, 10 MB context 1)", tried, len(ali), len(tc), len(signed)+3)
	if tried < 150 {
		t.Fatalf("only %d hostile requests", tried)
	}
	// Still serving.
	if code, _ := aliCall("GenerateDataKey", map[string]string{"KeyId": id}); code != "" {
		t.Fatalf("after the hostile input: %s", code)
	}
	if code := tcCall("GenerateDataKey", map[string]string{"KeyId": id, "KeySpec": "AES_128"}); code != "" {
		t.Fatalf("after the hostile input: %s", code)
	}
	_ = fmt.Sprint
}

// capturedRequest is a request as it reached the server.
type capturedRequest struct {
	method, target string
	header         http.Header
	body           []byte
}

func (c capturedRequest) clone() capturedRequest {
	return capturedRequest{c.method, c.target, c.header.Clone(), bytes.Clone(c.body)}
}

// send sends the request to base as it is and returns the error code the
// answer carries (Alibaba's or Tencent's envelope; "" for none) and the
// HTTP status.
func (c capturedRequest) send(t *testing.T, base string) (string, int) {
	t.Helper()
	req, err := http.NewRequest(c.method, base+c.target, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = c.header.Clone()
	req.Host = c.header.Get("Host")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Code     string
		Response struct{ Error struct{ Code string } }
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	if out.Code == "" {
		out.Code = out.Response.Error.Code
	}
	return out.Code, resp.StatusCode
}

// capturing passes every request on to the server and keeps the last one.
type capturing struct {
	next http.Handler
	mu   sync.Mutex
	last capturedRequest
}

func (c *capturing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	c.mu.Lock()
	c.last = capturedRequest{r.Method, r.URL.RequestURI(), h, body}
	c.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.next.ServeHTTP(w, r)
}

func (c *capturing) lastRequest() capturedRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last.clone()
}
