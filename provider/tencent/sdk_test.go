package tencent_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	kms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/tencent"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

const (
	secretID      = "AKIDTestSecretId0000000000000000000001"
	secretKey     = "TestSecretKeyForLocalKMS000000001"
	limitedID     = "AKIDLimitedSecretId000000000000000002"
	throttledID   = "AKIDThrottledSecretId0000000000000003"
	otherSecret   = "AnotherSecretKeyForLocalKMS0000002"
	region        = "ap-guangzhou"
	contextJSON   = `{"purpose":"test","tenant":"a b&c=d/é"}`
	reorderedJSON = `{"tenant":"a b\u0026c=d/\u00e9", "purpose":"test"}`
)

// recorder is an Observer keeping every record.
type recorder struct {
	mu   sync.Mutex
	recs []wire.Record
}

func (r *recorder) Observe(rec wire.Record) { r.mu.Lock(); r.recs = append(r.recs, rec); r.mu.Unlock() }

func (r *recorder) all() []wire.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.Record(nil), r.recs...)
}

// refuse is a Limiter refusing one SecretId.
type refuse string

func (l refuse) Allow(_ context.Context, id string) (bool, error) { return id != string(l), nil }

// clock is the server clock: real time plus a settable offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

type env struct {
	srv   *httptest.Server
	kms   *provider.Service
	obs   *recorder
	clock *clock
}

func newEnv(t testing.TB) *env {
	tok := softhsmtest.New(t)
	e := &env{kms: provider.New(tok.Token, provider.Options{}), obs: &recorder{}, clock: &clock{}}
	all := wire.Policy{Actions: []string{"*"}, Keys: []string{"*"}}
	keys := wire.NewAccessKeys(
		wire.AccessKey{AccessKeyId: secretID, AccessKeySecret: secretKey, Policy: all},
		wire.AccessKey{AccessKeyId: limitedID, AccessKeySecret: otherSecret,
			Policy: wire.Policy{Actions: []string{"Describe*", "ListKeys"}, Keys: []string{"*"}}},
		wire.AccessKey{AccessKeyId: throttledID, AccessKeySecret: otherSecret, Policy: all},
	)
	h := tencent.New(tencent.Config{KMS: e.kms, Keys: keys, Observer: e.obs, Limiter: refuse(throttledID), Now: e.clock.Now})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// variant is one way the SDK signs and sends.
type variant struct{ name, method, sign string }

var variants = []variant{
	{"TC3-POST", "POST", "TC3-HMAC-SHA256"},
	{"TC3-GET", "GET", "TC3-HMAC-SHA256"},
	{"HmacSHA256-POST", "POST", "HmacSHA256"},
	{"HmacSHA256-GET", "GET", "HmacSHA256"},
	{"HmacSHA1-POST", "POST", "HmacSHA1"},
	{"HmacSHA1-GET", "GET", "HmacSHA1"},
}

func (e *env) profile(v variant) *profile.ClientProfile {
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint = strings.TrimPrefix(e.srv.URL, "http://")
	cpf.HttpProfile.Scheme = "http"
	cpf.HttpProfile.ReqMethod = v.method
	cpf.SignMethod = v.sign
	return cpf
}

func (e *env) client(t testing.TB, v variant, id, secret string) *kms.Client {
	t.Helper()
	c, err := kms.NewClient(common.NewCredential(id, secret), region, e.profile(v))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sdkCode(err error) string {
	var e *tcerr.TencentCloudSDKError
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "not an SDK error: " + err.Error()
	}
	return ""
}

func wantSDKCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := sdkCode(err); got != code {
		t.Fatalf("%s: error %v: code %q, want %q", what, err, got, code)
	}
	var e *tcerr.TencentCloudSDKError
	if errors.As(err, &e) && e.RequestId == "" {
		t.Fatalf("%s: no RequestId in %v", what, err)
	}
}

func must[T any](t testing.TB, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// receivers are the key pairs GenerateDataKey exports to.
type receiver struct {
	alg  string // as sent; "" means SM2
	pem  string
	priv crypto.PrivateKey
}

var (
	receiversOnce sync.Once
	receiverList  []receiver
)

func receivers(t testing.TB) []receiver {
	receiversOnce.Do(func() {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		sk, err := sm2.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		rpem, _ := wrap.MarshalPublicKeyPEM(&rk.PublicKey)
		spem, _ := wrap.MarshalPublicKeyPEM(&sk.PublicKey)
		receiverList = []receiver{
			{"", spem, sk}, {"SM2", spem, sk}, {"SM2_C1C3C2_ASN1", spem, sk},
			{"RSAES_PKCS1_V1_5", rpem, rk}, {"RSAES_OAEP_SHA_1", rpem, rk}, {"RSAES_OAEP_SHA_256", rpem, rk},
		}
	})
	return receiverList
}

// open decrypts an exported key client-side.
func (r receiver) open(t testing.TB, b64 string) []byte {
	t.Helper()
	name := r.alg
	if name == "" {
		name = "SM2"
	}
	alg, err := wrap.LookupAlgorithm(name)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := alg.Decrypt(r.priv, ct)
	if err != nil {
		t.Fatalf("%s: client-side decryption: %v", name, err)
	}
	return pt
}

func decryptPlain(t testing.TB, c *kms.Client, blob string, ec *string) []byte {
	t.Helper()
	req := kms.NewDecryptRequest()
	req.CiphertextBlob, req.EncryptionContext = &blob, ec
	r := must[*kms.DecryptResponse](t, "Decrypt")(c.Decrypt(req))
	pt, err := base64.StdEncoding.DecodeString(*r.Response.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func createKey(t testing.TB, c *kms.Client, alias string) string {
	t.Helper()
	req := kms.NewCreateKeyRequest()
	req.Alias, req.Description = common.StringPtr(alias), common.StringPtr("test key")
	r := must[*kms.CreateKeyResponse](t, "CreateKey")(c.CreateKey(req))
	return *r.Response.KeyId
}

// TestSDKVariants runs the key lifecycle and the data-key operations with
// each way the SDK signs and sends.
func TestSDKVariants(t *testing.T) {
	e := newEnv(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) { flow(t, e, v) })
	}
	for _, rec := range e.obs.all() {
		if rec.API != "tencent" || rec.RequestId == "" || rec.Action == "" || rec.HTTPStatus != 200 || rec.AccessKeyId != secretID {
			t.Fatalf("record %+v", rec)
		}
		if rec.Action == "GenerateDataKey" && rec.Code == "" && (rec.KeyId == "" || rec.KeyVersionId == "") {
			t.Fatalf("GenerateDataKey record without key: %+v", rec)
		}
	}
}

func flow(t *testing.T, e *env, v variant) {
	c := e.client(t, v, secretID, secretKey)
	alias := "k-" + v.name
	before := uint64(time.Now().Unix())

	// CreateKey with alias, usage, type and tags.
	creq := kms.NewCreateKeyRequest()
	creq.Alias, creq.Description, creq.KeyUsage, creq.Type = common.StringPtr(alias), common.StringPtr("probe key"),
		common.StringPtr("ENCRYPT_DECRYPT"), common.Uint64Ptr(1)
	creq.Tags = []*kms.Tag{{TagKey: common.StringPtr("env"), TagValue: common.StringPtr("test")}}
	cr := must[*kms.CreateKeyResponse](t, "CreateKey")(c.CreateKey(creq)).Response
	id := *cr.KeyId
	if *cr.Alias != alias || *cr.KeyState != "Enabled" || *cr.KeyUsage != "ENCRYPT_DECRYPT" || *cr.CreateTime < before ||
		*cr.Description != "probe key" || *cr.TagCode != 2 || cr.RequestId == nil {
		t.Fatalf("CreateKey %+v", cr)
	}

	describe := func() *kms.KeyMetadata {
		t.Helper()
		req := kms.NewDescribeKeyRequest()
		req.KeyId = &id
		return must[*kms.DescribeKeyResponse](t, "DescribeKey")(c.DescribeKey(req)).Response.KeyMetadata
	}
	md := describe()
	if *md.KeyId != id || *md.Alias != alias || *md.KeyState != "Enabled" || *md.CreateTime != *cr.CreateTime ||
		*md.KeyRotationEnabled || *md.Origin != "TENCENT_KMS" || *md.DeletionDate != 0 {
		t.Fatalf("DescribeKey %+v", md)
	}

	lreq := kms.NewListKeysRequest()
	lreq.Limit = common.Uint64Ptr(200)
	lr := must[*kms.ListKeysResponse](t, "ListKeys")(c.ListKeys(lreq)).Response
	found := false
	for _, k := range lr.Keys {
		found = found || *k.KeyId == id
	}
	if !found || *lr.TotalCount < 1 || int(*lr.TotalCount) != len(lr.Keys) {
		t.Fatalf("ListKeys: %d keys of %d, ours found %v", len(lr.Keys), *lr.TotalCount, found)
	}

	// GenerateDataKey without a public key, with a context.
	greq := kms.NewGenerateDataKeyRequest()
	greq.KeyId, greq.KeySpec, greq.EncryptionContext = &id, common.StringPtr("AES_256"), common.StringPtr(contextJSON)
	gr := must[*kms.GenerateDataKeyResponse](t, "GenerateDataKey")(c.GenerateDataKey(greq)).Response
	dk, _ := base64.StdEncoding.DecodeString(*gr.Plaintext)
	if *gr.KeyId != id || len(dk) != 32 {
		t.Fatalf("GenerateDataKey: %d bytes", len(dk))
	}
	if got := decryptPlain(t, c, *gr.CiphertextBlob, common.StringPtr(reorderedJSON)); !bytes.Equal(got, dk) {
		t.Fatal("Decrypt: another data key")
	}
	dreq := kms.NewDecryptRequest()
	dreq.CiphertextBlob = gr.CiphertextBlob
	_, err := c.Decrypt(dreq)
	wantSDKCode(t, "Decrypt without the context", err, "InvalidParameterValue.InvalidCiphertext")

	// GenerateDataKey with EncryptionPublicKey, every algorithm; Decrypt
	// with EncryptionPublicKey too.
	for _, r := range receivers(t) {
		req := kms.NewGenerateDataKeyRequest()
		req.KeyId, req.NumberOfBytes, req.EncryptionPublicKey = &id, common.Uint64Ptr(32), common.StringPtr(r.pem)
		if r.alg != "" {
			req.EncryptionAlgorithm = common.StringPtr(r.alg)
		}
		resp := must[*kms.GenerateDataKeyResponse](t, "GenerateDataKey "+r.alg)(c.GenerateDataKey(req)).Response
		exported := r.open(t, *resp.Plaintext)
		if want := decryptPlain(t, c, *resp.CiphertextBlob, nil); len(exported) != 32 || !bytes.Equal(exported, want) {
			t.Fatalf("%s: the exported key is not the CiphertextBlob's", r.alg)
		}
		d := kms.NewDecryptRequest()
		d.CiphertextBlob, d.EncryptionPublicKey = resp.CiphertextBlob, common.StringPtr(r.pem)
		if r.alg != "" {
			d.EncryptionAlgorithm = common.StringPtr(r.alg)
		}
		dr := must[*kms.DecryptResponse](t, "Decrypt with public key "+r.alg)(c.Decrypt(d)).Response
		if got := r.open(t, *dr.Plaintext); !bytes.Equal(got, exported) || *dr.KeyId != id {
			t.Fatalf("%s: Decrypt with EncryptionPublicKey gave another key", r.alg)
		}
	}

	// Encrypt / Decrypt.
	msg := []byte("card data 4111 1111 1111 1111")
	ereq := kms.NewEncryptRequest()
	ereq.KeyId, ereq.Plaintext = common.StringPtr(alias), common.StringPtr(base64.StdEncoding.EncodeToString(msg))
	ereq.KeyId = &id
	er := must[*kms.EncryptResponse](t, "Encrypt")(c.Encrypt(ereq)).Response
	if got := decryptPlain(t, c, *er.CiphertextBlob, nil); !bytes.Equal(got, msg) || *er.KeyId != id {
		t.Fatal("Encrypt/Decrypt round trip")
	}

	// ReEncrypt under the same key with a new context, then under another key.
	rreq := kms.NewReEncryptRequest()
	rreq.CiphertextBlob, rreq.DestinationEncryptionContext = er.CiphertextBlob, common.StringPtr(contextJSON)
	rr := must[*kms.ReEncryptResponse](t, "ReEncrypt")(c.ReEncrypt(rreq)).Response
	if !*rr.ReEncrypted || *rr.KeyId != id || *rr.SourceKeyId != id || *rr.CiphertextBlob == *er.CiphertextBlob {
		t.Fatalf("ReEncrypt %+v", rr)
	}
	if got := decryptPlain(t, c, *rr.CiphertextBlob, common.StringPtr(contextJSON)); !bytes.Equal(got, msg) {
		t.Fatal("ReEncrypt: another plaintext")
	}
	other := createKey(t, c, alias+"-2")
	rreq = kms.NewReEncryptRequest()
	rreq.CiphertextBlob, rreq.SourceEncryptionContext, rreq.DestinationKeyId = rr.CiphertextBlob, common.StringPtr(contextJSON), &other
	rr = must[*kms.ReEncryptResponse](t, "ReEncrypt to another key")(c.ReEncrypt(rreq)).Response
	if *rr.KeyId != other || *rr.SourceKeyId != id {
		t.Fatalf("ReEncrypt to another key %+v", rr)
	}
	if got := decryptPlain(t, c, *rr.CiphertextBlob, nil); !bytes.Equal(got, msg) {
		t.Fatal("ReEncrypt to another key: another plaintext")
	}

	// Disable / Enable.
	kreq := func() (*kms.DisableKeyRequest, *kms.EnableKeyRequest) {
		d, en := kms.NewDisableKeyRequest(), kms.NewEnableKeyRequest()
		d.KeyId, en.KeyId = &id, &id
		return d, en
	}
	dis, en := kreq()
	must[*kms.DisableKeyResponse](t, "DisableKey")(c.DisableKey(dis))
	if s := *describe().KeyState; s != "Disabled" {
		t.Fatalf("after DisableKey: %s", s)
	}
	_, err = c.GenerateDataKey(greq)
	wantSDKCode(t, "GenerateDataKey on a disabled key", err, "ResourceUnavailable.CmkDisabled")
	must[*kms.EnableKeyResponse](t, "EnableKey")(c.EnableKey(en))

	// ScheduleKeyDeletion needs a disabled key; Cancel leaves it disabled.
	sreq := kms.NewScheduleKeyDeletionRequest()
	sreq.KeyId, sreq.PendingWindowInDays = &id, common.Uint64Ptr(7)
	_, err = c.ScheduleKeyDeletion(sreq)
	wantSDKCode(t, "ScheduleKeyDeletion on an enabled key", err, "ResourceUnavailable.CmkShouldBeDisabled")
	// A TC3 timestamp has second resolution: a state change with the
	// parameters of an earlier one in the same second carries its
	// signature and is refused as a replay (reuse.go). An honest client
	// repeating DisableKey and ScheduleKeyDeletion signs them anew, in the
	// next second.
	nextSecond()
	must[*kms.DisableKeyResponse](t, "DisableKey")(c.DisableKey(dis))
	sr := must[*kms.ScheduleKeyDeletionResponse](t, "ScheduleKeyDeletion")(c.ScheduleKeyDeletion(sreq)).Response
	if week := uint64(time.Now().Add(7 * 24 * time.Hour).Unix()); *sr.KeyId != id || *sr.DeletionDate+60 < week || *sr.DeletionDate > week+60 {
		t.Fatalf("ScheduleKeyDeletion: %d, want about %d", *sr.DeletionDate, week)
	}
	if md := describe(); *md.KeyState != "PendingDelete" || *md.DeletionDate != *sr.DeletionDate {
		t.Fatalf("pending: %s %d", *md.KeyState, *md.DeletionDate)
	}
	_, err = c.GenerateDataKey(greq)
	wantSDKCode(t, "GenerateDataKey on a key pending deletion", err, "ResourceUnavailable.KeyPendingDelete")
	canc := kms.NewCancelKeyDeletionRequest()
	canc.KeyId = &id
	if r := must[*kms.CancelKeyDeletionResponse](t, "CancelKeyDeletion")(c.CancelKeyDeletion(canc)).Response; *r.KeyId != id {
		t.Fatalf("CancelKeyDeletion: %s", *r.KeyId)
	}
	if md := describe(); *md.KeyState != "Disabled" || *md.DeletionDate != 0 {
		t.Fatalf("after cancel: %s %d", *md.KeyState, *md.DeletionDate)
	}
	nextSecond() // EnableKey again: signed anew
	must[*kms.EnableKeyResponse](t, "EnableKey")(c.EnableKey(en))

	// UpdateAlias renames; the old alias is gone.
	ureq := kms.NewUpdateAliasRequest()
	ureq.KeyId, ureq.Alias = &id, common.StringPtr(alias+"-new")
	must[*kms.UpdateAliasResponse](t, "UpdateAlias")(c.UpdateAlias(ureq))
	if a := *describe().Alias; a != alias+"-new" {
		t.Fatalf("alias after UpdateAlias: %s", a)
	}
	if _, err := e.kms.ResolveKeyId(t.Context(), "alias/"+alias); provider.ErrorCode(err) != provider.CodeAliasNotFound {
		t.Fatalf("old alias: %v", err)
	}
	ureq.KeyId = &other
	_, err = c.UpdateAlias(ureq)
	wantSDKCode(t, "UpdateAlias to a taken alias", err, "InvalidParameterValue.AliasAlreadyExists")

	// Rotation.
	rot := kms.NewEnableKeyRotationRequest()
	rot.KeyId, rot.RotateDays = &id, common.Uint64Ptr(30)
	must[*kms.EnableKeyRotationResponse](t, "EnableKeyRotation")(c.EnableKeyRotation(rot))
	st := kms.NewGetKeyRotationStatusRequest()
	st.KeyId = &id
	if r := must[*kms.GetKeyRotationStatusResponse](t, "GetKeyRotationStatus")(c.GetKeyRotationStatus(st)).Response; !*r.KeyRotationEnabled {
		t.Fatal("rotation not enabled")
	}
	if md := describe(); !*md.KeyRotationEnabled || *md.NextRotateTime < uint64(time.Now().Add(29*24*time.Hour).Unix()) {
		t.Fatalf("rotation metadata: %v %d", *md.KeyRotationEnabled, *md.NextRotateTime)
	}

	// Batch operations and service status.
	dks := kms.NewDescribeKeysRequest()
	dks.KeyIds = common.StringPtrs([]string{id, other, "00000000-0000-0000-0000-000000000000"})
	if r := must[*kms.DescribeKeysResponse](t, "DescribeKeys")(c.DescribeKeys(dks)).Response; len(r.KeyMetadatas) != 2 {
		t.Fatalf("DescribeKeys: %d keys", len(r.KeyMetadatas))
	}
	dis2 := kms.NewDisableKeysRequest()
	dis2.KeyIds = common.StringPtrs([]string{id, other})
	must[*kms.DisableKeysResponse](t, "DisableKeys")(c.DisableKeys(dis2))
	en2 := kms.NewEnableKeysRequest()
	en2.KeyIds = dis2.KeyIds
	must[*kms.EnableKeysResponse](t, "EnableKeys")(c.EnableKeys(en2))
	rnd := kms.NewGenerateRandomRequest()
	rnd.NumberOfBytes = common.Uint64Ptr(24)
	if r := must[*kms.GenerateRandomResponse](t, "GenerateRandom")(c.GenerateRandom(rnd)).Response; len(*r.Plaintext) != 32 {
		t.Fatalf("GenerateRandom: %q", *r.Plaintext)
	}
	if r := must[*kms.GetServiceStatusResponse](t, "GetServiceStatus")(c.GetServiceStatus(kms.NewGetServiceStatusRequest())).Response; !*r.ServiceEnabled {
		t.Fatal("service not enabled")
	}
}

// TestListKeysPaging checks Offset/Limit against the provider's pages.
func TestListKeysPaging(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, variants[0], secretID, secretKey)
	for i := range 12 {
		createKey(t, c, "page-"+string(rune('a'+i)))
	}
	list := func(offset, limit uint64) ([]string, uint64) {
		req := kms.NewListKeysRequest()
		req.Offset, req.Limit = &offset, &limit
		r := must[*kms.ListKeysResponse](t, "ListKeys")(c.ListKeys(req)).Response
		var out []string
		for _, k := range r.Keys {
			out = append(out, *k.KeyId)
		}
		return out, *r.TotalCount
	}
	all, total := list(0, 200)
	if total != 12 || len(all) != 12 {
		t.Fatalf("all: %d of %d", len(all), total)
	}
	for _, tc := range []struct{ off, lim uint64 }{{0, 5}, {3, 4}, {5, 5}, {10, 5}, {11, 1}, {12, 3}, {40, 10}} {
		got, _ := list(tc.off, tc.lim)
		want := all[min(int(tc.off), 12):min(int(tc.off+tc.lim), 12)]
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Offset %d Limit %d: %v, want %v", tc.off, tc.lim, got, want)
		}
	}
	req := kms.NewListKeysRequest()
	req.Limit = common.Uint64Ptr(201)
	_, err := c.ListKeys(req)
	wantSDKCode(t, "Limit 201", err, "InvalidParameterValue")
}

// replayTransport sends each request twice (or a second time edited) and
// returns the second answer: what an attacker replaying a captured request gets.
type replayTransport struct {
	between func()
	edit    func(r *http.Request)
}

func (rt replayTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	send := func(edit bool) (*http.Response, error) {
		c := r.Clone(r.Context())
		c.Body = io.NopCloser(bytes.NewReader(body))
		if edit && rt.edit != nil {
			rt.edit(c)
		}
		return http.DefaultTransport.RoundTrip(c)
	}
	first, err := send(false)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, first.Body)
	first.Body.Close()
	if rt.between != nil {
		rt.between()
	}
	return send(true)
}

// TestSDKErrors checks that every refusal reaches the SDK as a
// TencentCloudSDKError with the right code.
func TestSDKErrors(t *testing.T) {
	e := newEnv(t)
	tc3 := variants[0]
	c := e.client(t, tc3, secretID, secretKey)
	id := createKey(t, c, "errors")
	gen := func(c *kms.Client, edit func(*kms.GenerateDataKeyRequest)) error {
		req := kms.NewGenerateDataKeyRequest()
		req.KeyId, req.KeySpec = common.StringPtr(id), common.StringPtr("AES_256")
		if edit != nil {
			edit(req)
		}
		_, err := c.GenerateDataKey(req)
		return err
	}

	for _, v := range variants {
		wantSDKCode(t, v.name+" wrong secret", gen(e.client(t, v, secretID, "wrong"), nil), "AuthFailure.SignatureFailure")
		wantSDKCode(t, v.name+" unknown SecretId", gen(e.client(t, v, "AKIDnobody", secretKey), nil), "AuthFailure.SecretIdNotFound")
	}

	e.clock.offset.Store(int64(10 * time.Minute))
	wantSDKCode(t, "stale timestamp", gen(c, nil), "AuthFailure.SignatureExpire")
	e.clock.offset.Store(int64(-10 * time.Minute))
	wantSDKCode(t, "future timestamp", gen(c, nil), "AuthFailure.SignatureExpire")
	e.clock.offset.Store(0)

	// A replayed v1 request (same Nonce) is refused.
	for _, v := range variants[2:] {
		rc := e.client(t, v, secretID, secretKey)
		rc.WithHttpTransport(replayTransport{})
		req := kms.NewDescribeKeyRequest()
		req.KeyId = &id
		_, err := rc.DescribeKey(req)
		wantSDKCode(t, v.name+" replayed nonce", err, "AuthFailure.SignatureExpire")
	}
	// A TC3 request repeated as-is is an honest repeat; re-targeted to
	// another action or region it is refused (after 2 × tencent.RetargetGrace:
	// the server clock moves on between the two sends).
	for _, v := range variants[:2] {
		rc := e.client(t, v, secretID, secretKey)
		rc.WithHttpTransport(replayTransport{})
		req := kms.NewDescribeKeyRequest()
		req.KeyId = &id
		if _, err := rc.DescribeKey(req); err != nil {
			t.Fatalf("%s identical repeat: %v", v.name, err)
		}
		for _, edit := range []func(r *http.Request){
			func(r *http.Request) { r.Header["X-TC-Action"] = []string{"DisableKey"} },
			func(r *http.Request) { r.Header["X-TC-Region"] = []string{"ap-shanghai"} },
		} {
			rc := e.client(t, v, secretID, secretKey)
			later := func() { e.clock.offset.Add(int64(2*tencent.RetargetGrace + time.Second)) }
			rc.WithHttpTransport(replayTransport{between: later, edit: edit})
			_, err := rc.DescribeKey(req)
			wantSDKCode(t, v.name+" re-targeted signature", err, "AuthFailure.SignatureFailure")
			e.clock.offset.Store(0)
		}
	}
	if st, _ := e.kms.DescribeKey(t.Context(), &provider.KeyIdRequest{KeyId: id}); st.KeyMetadata.KeyState != "Enabled" {
		t.Fatalf("the re-targeted DisableKey ran: %s", st.KeyMetadata.KeyState)
	}

	limited := e.client(t, tc3, limitedID, otherSecret)
	wantSDKCode(t, "policy refusal", gen(limited, nil), "UnauthorizedOperation")
	dreq := kms.NewDescribeKeyRequest()
	dreq.KeyId = &id
	must[*kms.DescribeKeyResponse](t, "DescribeKey allowed by policy")(limited.DescribeKey(dreq))
	wantSDKCode(t, "throttled", gen(e.client(t, tc3, throttledID, otherSecret), nil), "RequestLimitExceeded")

	wantSDKCode(t, "unknown key", gen(c, func(r *kms.GenerateDataKeyRequest) {
		r.KeyId = common.StringPtr("5c6a4a77-5f48-4e8e-9a65-2c2b1f1a0000")
	}), "ResourceUnavailable.CmkNotFound")
	wantSDKCode(t, "malformed key id", gen(c, func(r *kms.GenerateDataKeyRequest) { r.KeyId = common.StringPtr("bad key!") }),
		"InvalidParameterValue.InvalidKeyId")
	wantSDKCode(t, "missing KeyId", gen(c, func(r *kms.GenerateDataKeyRequest) { r.KeyId = nil }), "MissingParameter")
	wantSDKCode(t, "NumberOfBytes", gen(c, func(r *kms.GenerateDataKeyRequest) { r.NumberOfBytes = common.Uint64Ptr(2000) }), "InvalidParameterValue")
	wantSDKCode(t, "NumberOfBytes 0", gen(c, func(r *kms.GenerateDataKeyRequest) { r.NumberOfBytes = common.Uint64Ptr(0) }), "InvalidParameterValue")
	wantSDKCode(t, "KeySpec", gen(c, func(r *kms.GenerateDataKeyRequest) { r.KeySpec = common.StringPtr("AES_512") }), "InvalidParameterValue")
	wantSDKCode(t, "EncryptionContext", gen(c, func(r *kms.GenerateDataKeyRequest) { r.EncryptionContext = common.StringPtr("not json") }),
		"InvalidParameterValue")
	wantSDKCode(t, "EncryptionContext too long", gen(c, func(r *kms.GenerateDataKeyRequest) {
		r.EncryptionContext = common.StringPtr(`{"k":"` + strings.Repeat("x", 1020) + `"}`)
	}), "InvalidParameterValue")
	rsaPEM := receivers(t)[3].pem
	wantSDKCode(t, "RSA key without algorithm", gen(c, func(r *kms.GenerateDataKeyRequest) { r.EncryptionPublicKey = &rsaPEM }),
		"FailedOperation.EncryptionError")
	wantSDKCode(t, "bad PEM", gen(c, func(r *kms.GenerateDataKeyRequest) {
		r.EncryptionPublicKey, r.EncryptionAlgorithm = common.StringPtr("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), common.StringPtr("SM2")
	}), "FailedOperation.EncryptionError")
	wantSDKCode(t, "unknown algorithm", gen(c, func(r *kms.GenerateDataKeyRequest) {
		r.EncryptionPublicKey, r.EncryptionAlgorithm = &rsaPEM, common.StringPtr("RSAES_OAEP_SHA_512")
	}), "FailedOperation.EncryptionError")

	d := kms.NewDecryptRequest()
	d.CiphertextBlob = common.StringPtr("bad")
	_, err := c.Decrypt(d)
	wantSDKCode(t, "bad ciphertext", err, "InvalidParameterValue.InvalidCiphertext")
	enc := kms.NewEncryptRequest()
	enc.KeyId, enc.Plaintext = &id, common.StringPtr(base64.StdEncoding.EncodeToString(make([]byte, 4097)))
	_, err = c.Encrypt(enc)
	wantSDKCode(t, "plaintext over 4 KiB", err, "InvalidParameterValue.InvalidPlaintext")
	enc.Plaintext = common.StringPtr(strings.Repeat("A", 70000))
	_, err = c.Encrypt(enc)
	wantSDKCode(t, "request over 64 KiB", err, "RequestSizeLimitExceeded")
	ck := kms.NewCreateKeyRequest()
	ck.Alias = common.StringPtr("errors")
	_, err = c.CreateKey(ck)
	wantSDKCode(t, "alias taken", err, "InvalidParameterValue.AliasAlreadyExists")
	ck.Alias = common.StringPtr("bad alias")
	_, err = c.CreateKey(ck)
	wantSDKCode(t, "bad alias", err, "InvalidParameterValue.InvalidAlias")
	ck.Alias, ck.KeyUsage = common.StringPtr("asym"), common.StringPtr("ASYMMETRIC_SIGN_VERIFY_SM2")
	_, err = c.CreateKey(ck)
	wantSDKCode(t, "SM2 signing key", err, "UnsupportedOperation")
	sk := kms.NewScheduleKeyDeletionRequest()
	sk.KeyId, sk.PendingWindowInDays = &id, common.Uint64Ptr(31)
	_, err = c.ScheduleKeyDeletion(sk)
	wantSDKCode(t, "pending window", err, "InvalidParameter.InvalidPendingWindowInDays")
	_, err = c.ArchiveKey(kms.NewArchiveKeyRequest())
	wantSDKCode(t, "unsupported action", err, "UnsupportedOperation")

	// Through the SDK's common client: unknown actions, parameters,
	// versions and wrong types.
	cc := common.NewCommonClient(common.NewCredential(secretID, secretKey), region, e.profile(tc3))
	send := func(version, action string, params any) error {
		req := tchttp.NewCommonRequest("kms", version, action)
		if err := req.SetActionParameters(params); err != nil {
			t.Fatal(err)
		}
		return cc.Send(req, tchttp.NewCommonResponse())
	}
	wantSDKCode(t, "unknown action", send("2019-01-18", "StealKeys", map[string]any{}), "InvalidAction")
	wantSDKCode(t, "unknown version", send("2017-03-12", "DescribeKey", map[string]any{"KeyId": id}), "NoSuchVersion")
	wantSDKCode(t, "unknown parameter", send("2019-01-18", "DescribeKey", map[string]any{"KeyId": id, "Extra": 1}), "UnknownParameter")
	wantSDKCode(t, "case of a name", send("2019-01-18", "DescribeKey", map[string]any{"keyId": id}), "UnknownParameter")
	wantSDKCode(t, "number as a string", send("2019-01-18", "GenerateDataKey", map[string]any{"KeyId": id, "NumberOfBytes": "32"}), "InvalidParameter")
	wantSDKCode(t, "string as a number", send("2019-01-18", "DescribeKey", map[string]any{"KeyId": 7}), "InvalidParameter")
	if err := send("2019-01-18", "GenerateDataKey", map[string]any{"KeyId": id, "NumberOfBytes": 16}); err != nil {
		t.Fatalf("common client: %v", err)
	}

	// One record per request, refusals included, with their codes; no
	// record holds a secret.
	codes := map[string]bool{}
	for _, rec := range e.obs.all() {
		codes[rec.Code] = true
	}
	for _, code := range []string{"", "AuthFailure.SignatureFailure", "AuthFailure.SecretIdNotFound", "AuthFailure.SignatureExpire",
		"UnauthorizedOperation", "RequestLimitExceeded", "ResourceUnavailable.CmkNotFound", "InvalidAction", "UnknownParameter",
		"RequestSizeLimitExceeded", "NoSuchVersion"} {
		if !codes[code] {
			t.Errorf("no record with code %q", code)
		}
	}
	for _, rec := range e.obs.all() {
		s := rec.AccessKeyId + rec.Action + rec.KeyId + rec.KeyVersionId + rec.Code
		if strings.Contains(s, secretKey) || strings.Contains(s, otherSecret) {
			t.Fatalf("record holds a secret: %+v", rec)
		}
		if rec.Code == "" && rec.AccessKeyId == "" {
			t.Fatalf("success without SecretId: %+v", rec)
		}
	}
}

// nextSecond waits until the wall clock enters its next second, so that
// the SDK's next TC3 signature differs from those made in this one.
func nextSecond() { time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) }
