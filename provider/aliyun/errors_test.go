package aliyun_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	lkms "github.com/aliyun/alibaba-cloud-sdk-go/services/kms"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/aliyun"
)

// checkErrorResponse: an error is HTTP 4xx/5xx, application/json, with
// RequestId, HostId, Code and Message, and the RequestId also in the
// x-acs-request-id header and in the record.
func checkErrorResponse(t testing.TB, status int, h http.Header, body []byte, code string, wantStatus int) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: HTTP %d, want %d", code, status, wantStatus)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", code, ct)
	}
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("%s: body %s: %v", code, body, err)
	}
	if e["Code"] != code || e["RequestId"] == "" || e["HostId"] == "" || e["Message"] == "" || len(e) != 4 {
		t.Errorf("error body %s, want code %s", body, code)
	}
	if h.Get("x-acs-request-id") != e["RequestId"] {
		t.Errorf("%s: x-acs-request-id %q, body %q", code, h.Get("x-acs-request-id"), e["RequestId"])
	}
}

// Every refusal reaches each SDK as its typed error with the right code,
// and on the wire as an HTTP error with a JSON body.
func TestSDKErrors(t *testing.T) {
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			c := newClient(t, v, e.addr, testAK, testSecret)
			k := must(c.CreateKey("k"))(t)
			g := must(c.GenerateDataKey(k.KeyId, nil, nil))(t)
			pub := wrappingKeys(t)[0]

			expect := func(name string, err error, code string, status int) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error, want %s", name, code)
				}
				if got := errCode(t, err); got != code {
					t.Fatalf("%s: code %q, want %q (%v)", name, got, code, err)
				}
				x := e.lastExchange()
				checkErrorResponse(t, x.Status, x.Header, x.Response, code, status)
				rec := e.obs.last()
				if rec.Code != code || rec.HTTPStatus != status {
					t.Fatalf("%s: record %+v", name, rec)
				}
				if g.Plaintext != "" && bytes.Contains(x.Response, []byte(g.Plaintext)) {
					t.Fatalf("%s: the error holds a plaintext", name)
				}
			}

			_, err := newClient(t, v, e.addr, testAK, "NotTheSecret").DescribeKey(k.KeyId)
			expect("wrong secret", err, aliyun.CodeSignatureDoesNotMatch, 400)
			_, err = newClient(t, v, e.addr, "LTAI5tNoSuchAccessKey", testSecret).DescribeKey(k.KeyId)
			expect("unknown access key", err, aliyun.CodeAccessKeyNotFound, 404)

			for _, d := range []time.Duration{20 * time.Minute, -20 * time.Minute} {
				e.clock.Set(d)
				_, err = c.DescribeKey(k.KeyId)
				expect("stale timestamp", err, aliyun.CodeTimestampExpired, 400)
			}
			e.clock.Set(0)

			// A replay, byte for byte, of what the SDK just sent.
			must(c.DescribeKey(k.KeyId))(t)
			raw := e.lastExchange().Request
			resp, body := e.send(t, raw)
			checkErrorResponse(t, resp.StatusCode, resp.Header, body, aliyun.CodeNonceUsed, 400)

			// Policy: the limited key may GenerateDataKey, Decrypt and
			// DescribeKey on alias/allowed only: the key it names now (by
			// the alias, its id or its blobs), not k.
			lim := newClient(t, v, e.addr, limitedAK, limitedSecret)
			allowed := must(c.CreateKey("allowed"))(t)
			mustOK(t, c.CreateAlias("alias/allowed", allowed.KeyId))
			lg := must(lim.GenerateDataKey("alias/allowed", nil, nil))(t)
			must(lim.Decrypt(lg.CiphertextBlob, nil))(t)
			must(lim.DescribeKey("alias/allowed"))(t)
			_, err = lim.CreateKey("not allowed")
			expect("policy: action", err, provider.CodeNoPermission, 403)
			_, err = lim.GenerateDataKey(k.KeyId, nil, nil)
			expect("policy: key", err, provider.CodeNoPermission, 403)
			_, err = lim.Decrypt(g.CiphertextBlob, nil)
			expect("policy: blob's key", err, provider.CodeNoPermission, 403)

			e.lim.refuse.Store(true)
			_, err = c.DescribeKey(k.KeyId)
			expect("throttled", err, aliyun.CodeThrottling, 429)
			e.lim.refuse.Store(false)

			_, err = c.GenerateDataKey("key-missing", nil, nil)
			expect("unknown key", err, provider.CodeKeyNotFound, 404)
			_, err = c.DescribeKey("alias/missing")
			expect("unknown alias", err, provider.CodeAliasNotFound, 404)
			_, err = c.GenerateDataKey(k.KeyId, new(5000), nil)
			expect("NumberOfBytes", err, provider.CodeInvalidParameter, 400)
			// A given 0 is a value (out of range), not "absent".
			_, err = c.GenerateDataKey(k.KeyId, new(0), nil)
			expect("NumberOfBytes 0", err, provider.CodeInvalidParameter, 400)
			_, _, err = c.ListKeys(1, 0)
			expect("PageSize 0", err, provider.CodeInvalidParameter, 400)
			_, _, err = c.ListKeys(0, 10)
			expect("PageNumber 0", err, provider.CodeInvalidParameter, 400)
			// An ARN of another region or account is not one of our keys.
			_, err = c.DescribeKey("acs:kms:cn-shanghai:999:key/" + k.KeyId)
			expect("ARN of another region and account", err, provider.CodeKeyNotFound, 404)
			_, err = c.GenerateDataKey("acs:kms:cn-hangzhou:999:key/"+k.KeyId, nil, nil)
			expect("ARN of another account", err, provider.CodeKeyNotFound, 404)
			expect("alias with ':'", c.CreateAlias("alias/a:b", k.KeyId), provider.CodeInvalidParameter, 400)
			_, err = c.GenerateAndExportDataKey(k.KeyId, pub.blob, "RSA_1024", pub.alg, nil)
			expect("WrappingKeySpec", err, provider.CodeInvalidParameter, 400)
			_, err = c.GenerateAndExportDataKey(k.KeyId, "AAAA", pub.spec, pub.alg, nil)
			expect("PublicKeyBlob", err, provider.CodeInvalidParameter, 400)
			_, err = c.Decrypt("bad", nil)
			expect("bad blob", err, provider.CodeInvalidCiphertext, 400)
			_, err = c.Decrypt(g.CiphertextBlob, map[string]string{"x": "y"})
			expect("wrong context", err, provider.CodeInvalidCiphertext, 400)
			err = c.ScheduleKeyDeletion(k.KeyId, 3)
			expect("PendingWindowInDays", err, provider.CodeInvalidParameter, 400)
			err = c.CreateAlias("alias/allowed", k.KeyId)
			expect("alias exists", err, provider.CodeAliasExists, 409)
		})
	}
}

// legacyCommon returns a legacy-SDK client and a CommonRequest for action,
// for the requests the typed SDK calls cannot make.
func legacyCommon(t *testing.T, e *testEnv, action string) (*lkms.Client, *requests.CommonRequest) {
	t.Helper()
	c, err := lkms.NewClientWithAccessKey("cn-hangzhou", testAK, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := requests.NewCommonRequest()
	r.Method, r.Scheme, r.Domain, r.Version, r.ApiName = "POST", "http", e.addr, aliyun.APIVersion, action
	return c, r
}

// Parameters through the legacy SDK's CommonRequest: form bodies and GET
// work; unknown actions, unknown parameters and unsupported features are
// refused by name.
func TestLegacyCommonRequests(t *testing.T) {
	e := newEnv(t)
	cl, r := legacyCommon(t, e, "CreateKey")
	r.QueryParams["Description"] = "from a common request"
	resp, err := cl.ProcessCommonRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	var created provider.KeyResponse
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &created); err != nil || created.KeyMetadata.KeyId == "" {
		t.Fatalf("CreateKey: %s %v", resp.GetHttpContentString(), err)
	}
	id := created.KeyMetadata.KeyId

	// Parameters in a form body, signed with the query.
	cl, r = legacyCommon(t, e, "GenerateDataKey")
	r.FormParams["KeyId"] = id
	r.FormParams["NumberOfBytes"] = "24"
	r.FormParams["EncryptionContext"] = `{"a":"b & c"}`
	resp, err = cl.ProcessCommonRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	var g provider.GenerateDataKeyResponse
	json.Unmarshal(resp.GetHttpContentBytes(), &g)
	if g.KeyId != id || len(b64(t, g.Plaintext)) != 24 {
		t.Fatalf("form body: %s", resp.GetHttpContentString())
	}
	if x := e.lastExchange(); !bytes.Contains(x.Request, []byte("\r\n\r\nEncryptionContext=")) {
		t.Fatalf("the parameters were not in the body:\n%s", x.Request)
	}

	// GET.
	cl, r = legacyCommon(t, e, "DescribeKey")
	r.Method = "GET"
	r.QueryParams["KeyId"] = id
	if _, err := cl.ProcessCommonRequest(r); err != nil {
		t.Fatal(err)
	}
	if x := e.lastExchange(); !bytes.HasPrefix(x.Request, []byte("GET ")) {
		t.Fatalf("not a GET: %s", x.Request[:40])
	}

	for _, c := range []struct {
		name, action string
		query, form  map[string]string
		code         string
		status       int
	}{
		{"unknown action", "NoSuchAction", nil, nil, aliyun.CodeActionNotFound, 404},
		{"asymmetric action", "AsymmetricSign", map[string]string{"KeyId": id}, nil, aliyun.CodeActionNotFound, 404},
		{"unknown parameter", "DescribeKey", map[string]string{"KeyId": id, "Bogus": "1"}, nil, provider.CodeInvalidParameter, 400},
		{"Tencent-only parameter", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionPublicKey": "x"}, nil, provider.CodeInvalidParameter, 400},
		{"bad int", "GenerateDataKey", map[string]string{"KeyId": id, "NumberOfBytes": "12x"}, nil, provider.CodeInvalidParameter, 400},
		{"bad bool", "GenerateDataKey", map[string]string{"KeyId": id, "DryRun": "yes"}, nil, provider.CodeInvalidParameter, 400},
		{"bad context", "GenerateDataKey", map[string]string{"KeyId": id, "EncryptionContext": `{"a":1}`}, nil, provider.CodeInvalidParameter, 400},
		{"context not JSON", "Decrypt", map[string]string{"CiphertextBlob": g.CiphertextBlob, "EncryptionContext": "a=b"}, nil, provider.CodeInvalidParameter, 400},
		{"query and body", "DescribeKey", map[string]string{"KeyId": id}, map[string]string{"KeyId": id}, provider.CodeInvalidParameter, 400},
		{"Origin", "CreateKey", map[string]string{"Origin": "EXTERNAL"}, nil, provider.CodeInvalidParameter, 400},
		{"ProtectionLevel", "CreateKey", map[string]string{"ProtectionLevel": "CLOUD"}, nil, provider.CodeInvalidParameter, 400},
		{"DKMSInstanceId", "CreateKey", map[string]string{"DKMSInstanceId": "kst-1"}, nil, provider.CodeInvalidParameter, 400},
		{"Filters", "ListKeys", map[string]string{"Filters": `[{"Key":"KeyState","Values":["Enabled"]}]`}, nil, provider.CodeInvalidParameter, 400},
		{"SourceKeyId", "ReEncrypt", map[string]string{"CiphertextBlob": g.CiphertextBlob, "DestinationKeyId": id, "SourceKeyId": id}, nil, provider.CodeInvalidParameter, 400},
		{"DryRun", "GenerateDataKey", map[string]string{"KeyId": id, "DryRun": "true"}, nil, provider.CodeDryRun, 412},
	} {
		cl, r := legacyCommon(t, e, c.action)
		for k, v := range c.query {
			r.QueryParams[k] = v
		}
		for k, v := range c.form {
			r.FormParams[k] = v
		}
		_, err := cl.ProcessCommonRequest(r)
		if err == nil || errCode(t, err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
			continue
		}
		x := e.lastExchange()
		checkErrorResponse(t, x.Status, x.Header, x.Response, c.code, c.status)
	}
	// Accepted and ignored as the SDKs send them.
	cl, r = legacyCommon(t, e, "CreateKey")
	for k, v := range map[string]string{"Origin": "Aliyun_KMS", "ProtectionLevel": "SOFTWARE", "Tags": `[{"TagKey":"a","TagValue":"b"}]`,
		"EnableAutomaticRotation": "false", "DKMSInstanceId": "", "RegionId": "cn-shanghai"} {
		r.QueryParams[k] = v
	}
	if _, err := cl.ProcessCommonRequest(r); err != nil {
		t.Fatal(err)
	}
}

// The captured ACS3 requests replayed at their own time: #2 is accepted
// (and fails only because its key is not in this token), #10, which is #2
// byte for byte, is a replay.
func TestCaptureReplayThroughHandler(t *testing.T) {
	e := newEnv(t)
	var first, replay aliyun.Capture
	for _, c := range aliyun.LoadCaptures(t) {
		switch c.Name {
		case "ali-acs3/002-GenerateDataKey.txt":
			first = c
		case "ali-acs3/010-GenerateDataKey.txt":
			replay = c
		}
	}
	if !bytes.Equal(first.Raw, replay.Raw) {
		t.Fatal("capture #10 is no longer a replay of #2")
	}
	e.clock.SetTo(first.Time)
	resp, body := e.send(t, first.Raw)
	checkErrorResponse(t, resp.StatusCode, resp.Header, body, provider.CodeKeyNotFound, 404)
	if rec := e.obs.last(); rec.AccessKeyId != testAK || rec.Action != "GenerateDataKey" || rec.KeyId != "key-hzz618ea97412104" {
		t.Fatalf("record %+v", rec)
	}
	resp, body = e.send(t, replay.Raw)
	checkErrorResponse(t, resp.StatusCode, resp.Header, body, aliyun.CodeNonceUsed, 400)
	// Half an hour later the nonce is forgotten, and the timestamp refused.
	e.clock.SetTo(first.Time.Add(31 * time.Minute))
	resp, body = e.send(t, replay.Raw)
	checkErrorResponse(t, resp.StatusCode, resp.Header, body, aliyun.CodeTimestampExpired, 400)
}

// Requests no SDK sends.
func TestMalformedRequests(t *testing.T) {
	e := newEnv(t)
	c := aliyun.LoadCaptures(t)[0] // ali-acs3/001-CreateKey
	e.clock.SetTo(c.Time)
	for _, x := range []struct {
		name   string
		raw    string
		code   string
		status int
	}{
		{"unsigned", "POST /?Action=CreateKey HTTP/1.1\r\nHost: h\r\n\r\n", aliyun.CodeIncompleteSignature, 400},
		{"other scheme", "POST / HTTP/1.1\r\nHost: h\r\nAuthorization: ACS3-HMAC-SM3 Credential=a,SignedHeaders=host,Signature=00\r\n\r\n", aliyun.CodeIncompleteSignature, 400},
		{"no signed headers", "POST / HTTP/1.1\r\nHost: h\r\nAuthorization: ACS3-HMAC-SHA256 Credential=a,Signature=00\r\n\r\n", aliyun.CodeIncompleteSignature, 400},
		{"method", "PUT / HTTP/1.1\r\nHost: h\r\n\r\n", aliyun.CodeUnsupportedMethod, 405},
		{"path", "POST /v1/keys HTTP/1.1\r\nHost: h\r\n\r\n", aliyun.CodeActionNotFound, 404},
		{"duplicate", "POST /?KeyId=a&KeyId=b HTTP/1.1\r\nHost: h\r\n\r\n", provider.CodeInvalidParameter, 400},
		{"bad escape", "POST /?KeyId=%zz HTTP/1.1\r\nHost: h\r\n\r\n", provider.CodeInvalidParameter, 400},
		{"json body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", provider.CodeInvalidParameter, 400},
		{"too large", "POST /?KeyId=" + strings.Repeat("a", aliyun.DefaultMaxBodyBytes) + " HTTP/1.1\r\nHost: h\r\n\r\n", aliyun.CodeRequestTooLarge, 413},
		{"too large body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("a", 70000), aliyun.CodeRequestTooLarge, 413},
		{"signature one off", strings.Replace(string(c.Raw), "Signature=16edcb", "Signature=16edcc", 1), aliyun.CodeSignatureDoesNotMatch, 400},
		{"body hash", strings.Replace(string(c.Raw), "X-Acs-Content-Sha256: e3b0", "X-Acs-Content-Sha256: e3b1", 1), aliyun.CodeSignatureDoesNotMatch, 400},
		{"upper-case signature", strings.Replace(string(c.Raw), "Signature=16edcb95aa9e", "Signature=16EDCB95AA9E", 1), aliyun.CodeIncompleteSignature, 400},
	} {
		resp, body := e.send(t, []byte(x.raw))
		checkErrorResponse(t, resp.StatusCode, resp.Header, body, x.code, x.status)
		if rec := e.obs.last(); rec.Code != x.code || rec.Action != "" {
			t.Errorf("%s: record %+v", x.name, rec)
		}
	}
	// The capture itself is still good.
	resp, body := e.send(t, c.Raw)
	if resp.StatusCode != 200 {
		t.Fatalf("the capture: %d %s", resp.StatusCode, body)
	}
}
