package aliyun_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/aliyun"
	"github.com/p11kms/p11kms/wrap"
)

// The EncryptionContext of the captures: a space, & (sent as \u0026), =,
// / and a non-ASCII letter.
var captureEC = map[string]string{"purpose": "test", "tenant": "a b&c=d/é"}

// wrappingKey is a receiver's key pair, as the tests' "other HSM".
type wrappingKey struct {
	spec, alg string
	priv      any
	blob      string // base64 DER SubjectPublicKeyInfo
}

func wrappingKeys(t testing.TB) []wrappingKey {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var out []wrappingKey
	for _, k := range []struct {
		spec, alg string
		priv, pub any
	}{{"RSA_2048", "RSAES_OAEP_SHA_256", rk, &rk.PublicKey}, {"EC_SM2", "SM2PKE", sk, &sk.PublicKey}} {
		der, err := wrap.MarshalPublicKeyDER(k.pub)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, wrappingKey{k.spec, k.alg, k.priv, base64.StdEncoding.EncodeToString(der)})
	}
	return out
}

// unwrap decrypts an exported key with the receiver's private key.
func (w wrappingKey) unwrap(t testing.TB, exported string) []byte {
	t.Helper()
	alg, err := wrap.LookupAlgorithm(w.alg)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := base64.StdEncoding.DecodeString(exported)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := alg.Decrypt(w.priv, ct)
	if err != nil {
		t.Fatalf("%s: client-side decrypt of the exported key: %v", w.alg, err)
	}
	return pt
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// must(f())(t) is f's result, or the test's end if f failed.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if got := errCode(t, err); got != code {
		t.Fatalf("error code %q, want %q (%v)", got, code, err)
	}
}

// Every SDK variant drives every operation, unchanged, against the handler.
func TestSDKVariants(t *testing.T) {
	wks := wrappingKeys(t)
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t)
			c := newClient(t, v, e.addr, testAK, testSecret)
			sdkFlow(t, c, wks)
			checkScheme(t, e, v)
			checkRecords(t, e)
			if v == variantACS3 {
				checkResponseFields(t, e)
			}
		})
	}
}

func sdkFlow(t *testing.T, c kmsClient, wks []wrappingKey) {
	// Keys.
	k := must(c.CreateKey("probe key"))(t)
	if k.KeyId == "" || k.KeyState != provider.StateEnabled || k.Description != "probe key" || k.KeySpec != provider.KeySpecAES256 || k.PrimaryKeyVersion == "" || k.Arn == "" {
		t.Fatalf("CreateKey: %+v", k)
	}
	d := must(c.DescribeKey(k.KeyId))(t)
	if d != k {
		t.Fatalf("DescribeKey %+v, CreateKey %+v", d, k)
	}
	if d := must(c.DescribeKey(k.Arn))(t); d.KeyId != k.KeyId {
		t.Fatalf("DescribeKey by ARN: %+v", d)
	}
	// Characters every signing scheme encodes specially.
	tricky := `second * ~ + %20 & = / ? # é 😀 "q" \u0026`
	k2 := must(c.CreateKey(tricky))(t)
	if d := must(c.DescribeKey(k2.KeyId))(t); d.Description != tricky {
		t.Fatalf("Description %q, want %q", d.Description, tricky)
	}
	// An empty value (ACS4 signs it without "=").
	k3 := must(c.CreateKey(""))(t)
	mustOK(t, c.ScheduleKeyDeletion(k3.KeyId, 7))
	ids, total, err := c.ListKeys(1, 10)
	mustOK(t, err)
	if total != 3 || !slices.Contains(ids, k.KeyId) || !slices.Contains(ids, k2.KeyId) {
		t.Fatalf("ListKeys: %v total %d", ids, total)
	}
	if ids, total, _ := c.ListKeys(2, 1); len(ids) != 1 || total != 3 {
		t.Fatalf("ListKeys page 2: %v total %d", ids, total)
	}

	// Versions: an old blob still decrypts after rotation.
	old := must(c.GenerateDataKey(k.KeyId, nil, captureEC))(t)
	if len(b64(t, old.Plaintext)) != 32 || old.KeyVersionId != k.PrimaryKeyVersion || old.KeyId != k.KeyId {
		t.Fatalf("GenerateDataKey: %+v", old)
	}
	ver := must(c.CreateKeyVersion(k.KeyId))(t)
	if ver == "" || ver == k.PrimaryKeyVersion {
		t.Fatalf("CreateKeyVersion: %q", ver)
	}
	if d := must(c.DescribeKey(k.KeyId))(t); d.PrimaryKeyVersion != ver {
		t.Fatalf("primary %s after CreateKeyVersion %s", d.PrimaryKeyVersion, ver)
	}
	dec := must(c.Decrypt(old.CiphertextBlob, captureEC))(t)
	if dec.Plaintext != old.Plaintext || dec.KeyVersionId != k.PrimaryKeyVersion || dec.KeyId != k.KeyId {
		t.Fatalf("Decrypt of the old version's blob: %+v", dec)
	}
	_, err = c.Decrypt(old.CiphertextBlob, map[string]string{"purpose": "other"})
	wantErr(t, err, provider.CodeInvalidCiphertext)

	// Aliases.
	mustOK(t, c.CreateAlias("alias/payments", k.KeyId))
	if d := must(c.DescribeKey("alias/payments"))(t); d.KeyId != k.KeyId {
		t.Fatalf("DescribeKey by alias: %+v", d)
	}
	mustOK(t, c.UpdateAlias("alias/payments", k2.KeyId))
	as := must(c.ListAliases())(t)
	if len(as) != 1 || as[0] != (alias{"alias/payments", k2.KeyId}) {
		t.Fatalf("ListAliases: %+v", as)
	}
	g := must(c.GenerateDataKey("alias/payments", new(16), nil))(t)
	if g.KeyId != k2.KeyId || len(b64(t, g.Plaintext)) != 16 {
		t.Fatalf("GenerateDataKey by alias: %+v", g)
	}
	mustOK(t, c.DeleteAlias("alias/payments"))
	if as := must(c.ListAliases())(t); len(as) != 0 {
		t.Fatalf("ListAliases after DeleteAlias: %+v", as)
	}

	// Export: the receiver's private key recovers what Decrypt returns.
	for _, w := range wks {
		x := must(c.GenerateAndExportDataKey(k.KeyId, w.blob, w.spec, w.alg, captureEC))(t)
		if x.KeyId != k.KeyId || x.KeyVersionId != ver || x.CiphertextBlob == "" {
			t.Fatalf("GenerateAndExportDataKey %s: %+v", w.alg, x)
		}
		got := w.unwrap(t, x.ExportedDataKey)
		d := must(c.Decrypt(x.CiphertextBlob, captureEC))(t)
		if !bytes.Equal(got, b64(t, d.Plaintext)) || len(got) != 32 {
			t.Fatalf("%s: the exported key is not Decrypt(CiphertextBlob)", w.alg)
		}
		ex := must(c.ExportDataKey(old.CiphertextBlob, w.blob, w.spec, w.alg, captureEC))(t)
		if !bytes.Equal(w.unwrap(t, ex.ExportedDataKey), b64(t, old.Plaintext)) || ex.KeyId != k.KeyId {
			t.Fatalf("%s: ExportDataKey does not export the blob's key", w.alg)
		}
	}

	// Encrypt, ReEncrypt.
	msg := base64.StdEncoding.EncodeToString([]byte("card 4111 1111 1111 1111"))
	en := must(c.Encrypt(k.KeyId, msg, captureEC))(t)
	if en.KeyId != k.KeyId || en.KeyVersionId != ver {
		t.Fatalf("Encrypt: %+v", en)
	}
	if d := must(c.Decrypt(en.CiphertextBlob, captureEC))(t); d.Plaintext != msg {
		t.Fatal("Decrypt(Encrypt(m)) != m")
	}
	dstEC := map[string]string{"moved": "yes"}
	re := must(c.ReEncrypt(en.CiphertextBlob, captureEC, k2.KeyId, dstEC))(t)
	if re.KeyId != k2.KeyId {
		t.Fatalf("ReEncrypt: %+v", re)
	}
	if d := must(c.Decrypt(re.CiphertextBlob, dstEC))(t); d.Plaintext != msg || d.KeyId != k2.KeyId {
		t.Fatalf("Decrypt(ReEncrypt): %+v", d)
	}

	// States.
	mustOK(t, c.DisableKey(k.KeyId))
	_, err = c.GenerateDataKey(k.KeyId, nil, nil)
	wantErr(t, err, provider.CodeDisabled)
	mustOK(t, c.EnableKey(k.KeyId))
	must(c.GenerateDataKey(k.KeyId, nil, nil))(t)
	mustOK(t, c.ScheduleKeyDeletion(k2.KeyId, 7))
	if d := must(c.DescribeKey(k2.KeyId))(t); d.KeyState != provider.StatePendingDeletion {
		t.Fatalf("after ScheduleKeyDeletion: %s", d.KeyState)
	}
	_, err = c.GenerateDataKey(k2.KeyId, nil, nil)
	wantErr(t, err, provider.CodePendingDeletion)
	mustOK(t, c.CancelKeyDeletion(k2.KeyId))
	if d := must(c.DescribeKey(k2.KeyId))(t); d.KeyState != provider.StateEnabled {
		t.Fatalf("after CancelKeyDeletion: %s", d.KeyState)
	}
}

// checkScheme: every request of the variant was signed with its scheme.
func checkScheme(t *testing.T, e *testEnv, variant string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.exchanges {
		r, err := aliyun.ReadRawRequest(x.Request)
		if err != nil {
			t.Fatal(err)
		}
		auth, sig := r.Header.Get("Authorization"), r.URL.Query().Get("Signature")
		var ok bool
		switch variant {
		case variantACS3:
			ok = strings.HasPrefix(auth, aliyun.SchemeACS3+" ")
		case variantACS4:
			ok = strings.HasPrefix(auth, aliyun.SchemeACS4+" ")
		default:
			ok = auth == "" && sig != ""
		}
		if !ok {
			t.Fatalf("%s sent %q / Signature=%q", variant, auth, sig)
		}
	}
	t.Logf("%d requests signed as %s", len(e.exchanges), variant)
}

// checkRecords: one record per request, with the request id of the
// response, and never a plaintext.
func checkRecords(t *testing.T, e *testEnv) {
	t.Helper()
	e.obs.mu.Lock()
	recs := slices.Clone(e.obs.all)
	e.obs.mu.Unlock()
	e.mu.Lock()
	exs := slices.Clone(e.exchanges)
	e.mu.Unlock()
	if len(recs) != len(exs) {
		t.Fatalf("%d records for %d requests", len(recs), len(exs))
	}
	for i, r := range recs {
		x := exs[i]
		var body struct{ RequestId, Plaintext string }
		json.Unmarshal(x.Response, &body)
		if r.RequestId == "" || r.RequestId != body.RequestId || r.HTTPStatus != x.Status || r.API != "aliyun" ||
			r.AccessKeyId != testAK || r.Action == "" || r.SourceAddr == "" || r.Time.IsZero() {
			t.Fatalf("record %d: %+v for %d %s", i, r, x.Status, x.Response)
		}
		if (r.Code == "") != (x.Status == 200) {
			t.Fatalf("record %d: code %q status %d", i, r.Code, x.Status)
		}
		if body.Plaintext != "" && strings.Contains(strings.Join([]string{r.KeyId, r.KeyVersionId, r.Code}, " "), body.Plaintext) {
			t.Fatalf("record %d holds the plaintext", i)
		}
		if r.Action == "GenerateAndExportDataKey" && (r.KeyId == "" || r.KeyVersionId == "") {
			t.Fatalf("record %d: no key id or version: %+v", i, r)
		}
	}
}

// actionOf names the action of a raw request.
func actionOf(raw []byte) string {
	r, err := aliyun.ReadRawRequest(raw)
	if err != nil {
		return ""
	}
	if a := r.Header.Get("X-Acs-Action"); a != "" && r.Header.Get("Authorization") != "" {
		return a
	}
	return r.URL.Query().Get("Action")
}

// fieldNames lists the JSON object's field paths.
func fieldNames(prefix string, v any, out map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, val := range m {
		out[prefix+k] = true
		fieldNames(prefix+k+".", val, out)
	}
}

// checkResponseFields: every field of every successful captured response
// is in our response to the same action.
func checkResponseFields(t *testing.T, e *testEnv) {
	t.Helper()
	ours := map[string]map[string]bool{}
	e.mu.Lock()
	for _, x := range e.exchanges {
		if x.Status != 200 {
			continue
		}
		var v any
		if err := json.Unmarshal(x.Response, &v); err != nil {
			t.Fatalf("response is not JSON: %s", x.Response)
		}
		a := actionOf(x.Request)
		if ours[a] == nil {
			ours[a] = map[string]bool{}
		}
		fieldNames("", v, ours[a])
	}
	e.mu.Unlock()
	checked := 0
	for _, c := range aliyun.LoadCaptures(t) {
		if c.Status != 200 {
			continue
		}
		var v any
		if err := json.Unmarshal(c.Response, &v); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		want := map[string]bool{}
		fieldNames("", v, want)
		a := actionOf(c.Raw)
		for f := range want {
			if !ours[a][f] {
				t.Errorf("%s: our %s responses lack %s", c.Name, a, f)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no successful capture to compare with")
	}
}
