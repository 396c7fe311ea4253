package aliyun

import (
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// Every wire action has a decoder, and every decoder knows each field it
// fills.
func TestActionSpecs(t *testing.T) {
	if len(actionSpecs) != len(wire.Actions) {
		t.Fatalf("%d specs for %d actions", len(actionSpecs), len(wire.Actions))
	}
	gdk := actionSpecs["GenerateDataKey"]
	for _, f := range []string{"KeyId", "KeySpec", "NumberOfBytes", "EncryptionContext", "DryRun"} {
		if _, ok := gdk.fields[f]; !ok {
			t.Errorf("GenerateDataKey lacks %s", f)
		}
	}
	for _, f := range []string{"EncryptionPublicKey", "EncryptionAlgorithm"} {
		if _, ok := gdk.fields[f]; ok {
			t.Errorf("GenerateDataKey takes the Tencent-only %s", f)
		}
	}
	if _, ok := actionSpecs["CreateKey"].fields["KeyId"]; ok {
		t.Error("CreateKey takes KeyId (a seeded-test-mode field)")
	}
}

// Every parameter an action takes is one the Alibaba API (the official
// kms-20160120 v3 SDK's request struct) defines for that action, save the
// p11kms extensions listed (none: ReEncrypt's PublicKeyBlob was removed, issue 17); DryRun in particular is offered exactly where
// the API has it (not on DescribeKey, CreateKey or the state changes).
func TestActionParametersAreTheAPIs(t *testing.T) {
	extensions := map[string][]string{}
	client := reflect.TypeFor[*kms.Client]()
	for name, spec := range actionSpecs {
		m, ok := client.MethodByName(name)
		if !ok || m.Type.NumIn() < 2 || m.Type.In(1).Kind() != reflect.Pointer {
			t.Errorf("the SDK has no %s(request)", name)
			continue
		}
		sdkReq := m.Type.In(1).Elem()
		api := map[string]bool{}
		for i := range sdkReq.NumField() {
			api[sdkReq.Field(i).Name] = true
		}
		for field := range spec.fields {
			if !api[field] && !slices.Contains(extensions[name], field) {
				t.Errorf("%s takes %s, which the Alibaba API does not define for it", name, field)
			}
		}
		if _, ours := spec.fields["DryRun"]; ours != api["DryRun"] {
			t.Errorf("%s: DryRun offered %v, in the Alibaba API %v", name, ours, api["DryRun"])
		}
	}
}

func TestDecodeParams(t *testing.T) {
	req, err := decodeParams(actionSpecs["GenerateAndExportDataKey"], map[string]string{
		"KeyId": "k1", "NumberOfBytes": "16", "DryRun": "True", "KeySpec": "AES_128",
		// Go's json.Marshal of a map, as the v3 SDK sends it.
		"EncryptionContext": `{"purpose":"test","tenant":"a b\u0026c=d/é"}`,
		"PublicKeyBlob":     "cHVi", "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &provider.GenerateAndExportDataKeyRequest{KeyId: "k1", NumberOfBytes: new(16), DryRun: true, KeySpec: "AES_128",
		EncryptionContext: wrap.EncryptionContext{"purpose": "test", "tenant": "a b&c=d/é"},
		PublicKeyBlob:     "cHVi", WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256"}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("got %+v\nwant %+v", req, want)
	}
	// Empty values are absent values.
	req, err = decodeParams(actionSpecs["GenerateDataKey"], map[string]string{"KeyId": "k", "NumberOfBytes": "", "DryRun": "", "EncryptionContext": ""})
	if err != nil || !reflect.DeepEqual(req, &provider.GenerateDataKeyRequest{KeyId: "k"}) {
		t.Fatalf("%+v %v", req, err)
	}
	// ReEncrypt's two contexts.
	req, err = decodeParams(actionSpecs["ReEncrypt"], map[string]string{"CiphertextBlob": "b", "DestinationKeyId": "k",
		"SourceEncryptionContext": `{"a":"1"}`, "DestinationEncryptionContext": `{"b":"2"}`, "SourceKeyId": ""})
	if err != nil {
		t.Fatal(err)
	}
	if re := req.(*provider.ReEncryptRequest); re.SourceEncryptionContext["a"] != "1" || re.DestinationEncryptionContext["b"] != "2" {
		t.Fatalf("%+v", re)
	}
}

func TestDecodeParamsRefusals(t *testing.T) {
	for _, c := range []struct {
		action string
		params map[string]string
		param  string // the parameter the error names
	}{
		{"GenerateDataKey", map[string]string{"NumberOfBytes": "1e3"}, "NumberOfBytes"},
		{"GenerateDataKey", map[string]string{"NumberOfBytes": "99999999999"}, "NumberOfBytes"},
		{"GenerateDataKey", map[string]string{"DryRun": "1"}, "DryRun"},
		{"GenerateDataKey", map[string]string{"EncryptionContext": `{"a":"1","a":"2"}`}, "EncryptionContext"},
		{"GenerateDataKey", map[string]string{"EncryptionContext": `["a"]`}, "EncryptionContext"},
		{"GenerateDataKey", map[string]string{"EncryptionContext": `{"a":"` + strings.Repeat("x", provider.MaxEncryptionContextChars) + `"}`}, "EncryptionContext"},
		{"ReEncrypt", map[string]string{"DestinationEncryptionContext": "{"}, "DestinationEncryptionContext"},
		{"GenerateDataKey", map[string]string{"KeyId": "\xff"}, "KeyId"},
		{"GenerateDataKey", map[string]string{"EncryptionPublicKey": "pem"}, "EncryptionPublicKey"},
		{"CreateKey", map[string]string{"KeyId": "chosen"}, "KeyId"},
		{"CreateKey", map[string]string{"Tags": "env=test"}, "Tags"},
		{"CreateKey", map[string]string{"Policy": `{"Version":"1"}`}, "Policy"},
		{"DescribeKey", map[string]string{"Tags": "[]"}, "Tags"},
		{"ReEncrypt", map[string]string{"SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}, "SourceEncryptionAlgorithm"},
	} {
		_, err := decodeParams(actionSpecs[c.action], c.params)
		e := provider.AsError(err)
		if e == nil || e.Code != provider.CodeInvalidParameter || e.Param != c.param {
			t.Errorf("%s %v: %v, want InvalidParameter for %s", c.action, c.params, err, c.param)
		}
		if e != nil {
			for _, v := range c.params {
				if len(v) > 3 && strings.Contains(e.Message, v) {
					t.Errorf("%s: the error repeats the value: %s", c.action, e.Message)
				}
			}
		}
	}
}

// percentEncode and canonicalQuery follow the SDKs' encoding.
func TestCanonicalQuery(t *testing.T) {
	got := canonicalQuery(map[string]string{"b": "a b*~+/é", "a": "", "A": "x"}, false)
	if want := "A=x&a=&b=a%20b%2A~%2B%2F%C3%A9"; got != want {
		t.Fatalf("ACS3/RPC %s, want %s", got, want)
	}
	got = canonicalQuery(map[string]string{"b": "1", "a": ""}, true)
	if want := "a&b=1"; got != want {
		t.Fatalf("ACS4 %s, want %s", got, want)
	}
}

// sdkPercentEncode is the SDKs' own formula (tea-utils, openapi-util):
// Go's query escaping, then "+" → %20, "*" → %2A, %7E → "~".
func sdkPercentEncode(s string) string {
	s = url.QueryEscape(s)
	s = strings.ReplaceAll(s, "+", "%20")
	s = strings.ReplaceAll(s, "*", "%2A")
	return strings.ReplaceAll(s, "%7E", "~")
}

// percentEncode agrees with the SDKs' formula on every byte value, alone
// and in context.
func TestPercentEncodeEveryByte(t *testing.T) {
	for c := range 256 {
		for _, s := range []string{string([]byte{byte(c)}), "a" + string([]byte{byte(c)}) + "Z~ *+"} {
			if got, want := percentEncode(s), sdkPercentEncode(s); got != want {
				t.Fatalf("percentEncode(%q) = %q, the SDKs sign %q", s, got, want)
			}
		}
	}
}

// FuzzPercentEncode: the signing encoder never disagrees with the SDKs'.
func FuzzPercentEncode(f *testing.F) {
	for _, s := range []string{"", "a b*~+/é", "%7E", "\xff\x00", "KeyId=alias/x&y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := percentEncode(s), sdkPercentEncode(s); got != want {
			t.Fatalf("percentEncode(%q) = %q, the SDKs sign %q", s, got, want)
		}
	})
}

func TestParseRaw(t *testing.T) {
	rr, err := parseRawText("A=1&B=two+words", "application/x-www-form-urlencoded; charset=utf-8", "C=3")
	if err != nil || rr.All["A"] != "1" || rr.All["B"] != "two words" || rr.All["C"] != "3" || len(rr.Query) != 2 || len(rr.Form) != 1 {
		t.Fatalf("%+v %v", rr, err)
	}
	for _, c := range []struct{ q, ct, body string }{
		{"A=1&A=1", "", ""},
		{"A=1", "application/x-www-form-urlencoded", "A=2"},
		{"A=%", "", ""},
		{"A=1;B=2", "", ""},
		{"", "application/json", "{}"},
		{"", "", "A=1"},
	} {
		if _, err := parseRawText(c.q, c.ct, c.body); provider.ErrorCode(err) != provider.CodeInvalidParameter {
			t.Errorf("%q %q %q: %v", c.q, c.ct, c.body, err)
		}
	}
}

// parseRawText runs parseRaw on a request with this query string,
// Content-Type and body, read as the pipeline reads it.
func parseRawText(query, contentType, body string) (*rawRequest, error) {
	r := httptest.NewRequest("POST", "/?"+query, strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	req := wire.NewRequest(r, DefaultMaxBodyBytes)
	b, err := req.Body()
	if err != nil {
		return nil, err
	}
	return parseRaw(req, b)
}
