package awskms_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestSymmetricOperations runs the symmetric operations through the AWS
// SDK: key metadata, every key reference form, Encrypt/Decrypt with and
// without KeyId, data keys, ReEncrypt, GenerateRandom.
func TestSymmetricOperations(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	k := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{Description: aws.String("payments")}))
	m := k.KeyMetadata
	id := aws.ToString(m.KeyId)
	if arn := "arn:aws:kms:" + region + ":" + account + ":key/" + id; aws.ToString(m.Arn) != arn || !m.Enabled || m.KeyState != types.KeyStateEnabled ||
		m.KeySpec != types.KeySpecSymmetricDefault || m.KeyUsage != types.KeyUsageTypeEncryptDecrypt || m.CreationDate == nil ||
		aws.ToString(m.AWSAccountId) != account || aws.ToString(m.Description) != "payments" || m.Origin != types.OriginTypeAwsKms {
		t.Fatalf("CreateKey metadata: %+v", m)
	}
	must[*kms.CreateAliasOutput](t, "CreateAlias")(c.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/payments"), TargetKeyId: m.Arn}))
	for _, ref := range []string{id, aws.ToString(m.Arn), "alias/payments", "arn:aws:kms:" + region + ":" + account + ":alias/payments"} {
		d := must[*kms.DescribeKeyOutput](t, "DescribeKey "+ref)(c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String(ref)}))
		if aws.ToString(d.KeyMetadata.KeyId) != id {
			t.Fatalf("DescribeKey %s: %s", ref, aws.ToString(d.KeyMetadata.KeyId))
		}
	}
	ec := map[string]string{"tenant": "a b&c=d/é"}
	enc := must[*kms.EncryptOutput](t, "Encrypt")(c.Encrypt(ctx(), &kms.EncryptInput{KeyId: aws.String("alias/payments"), Plaintext: []byte("hello"), EncryptionContext: ec}))
	if aws.ToString(enc.KeyId) != aws.ToString(m.Arn) || enc.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("Encrypt: %+v", enc)
	}
	for _, keyID := range []*string{nil, aws.String(id), aws.String("alias/payments")} {
		dec := must[*kms.DecryptOutput](t, "Decrypt")(c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: keyID}))
		if string(dec.Plaintext) != "hello" || aws.ToString(dec.KeyId) != aws.ToString(m.Arn) {
			t.Fatalf("Decrypt: %+v", dec)
		}
	}
	_, err := c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantErr(t, "Decrypt without its EncryptionContext", err, "InvalidCiphertextException", 400)

	for _, in := range []*kms.GenerateDataKeyInput{
		{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256},
		{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes128},
		{KeyId: aws.String(id), NumberOfBytes: aws.Int32(64)},
	} {
		dk := must[*kms.GenerateDataKeyOutput](t, "GenerateDataKey")(c.GenerateDataKey(ctx(), in))
		want := map[types.DataKeySpec]int{types.DataKeySpecAes256: 32, types.DataKeySpecAes128: 16, "": 64}[in.KeySpec]
		if len(dk.Plaintext) != want || aws.ToString(dk.KeyId) != aws.ToString(m.Arn) {
			t.Fatalf("GenerateDataKey %v: %d bytes, key %s", in.KeySpec, len(dk.Plaintext), aws.ToString(dk.KeyId))
		}
		dec := must[*kms.DecryptOutput](t, "Decrypt data key")(c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob}))
		if !bytes.Equal(dec.Plaintext, dk.Plaintext) {
			t.Fatal("the data key's CiphertextBlob does not decrypt to its Plaintext")
		}
	}
	wp := must[*kms.GenerateDataKeyWithoutPlaintextOutput](t, "GenerateDataKeyWithoutPlaintext")(
		c.GenerateDataKeyWithoutPlaintext(ctx(), &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256}))
	if len(wp.CiphertextBlob) == 0 {
		t.Fatal("GenerateDataKeyWithoutPlaintext: no CiphertextBlob")
	}

	k2 := must[*kms.CreateKeyOutput](t, "CreateKey 2")(c.CreateKey(ctx(), &kms.CreateKeyInput{}))
	re := must[*kms.ReEncryptOutput](t, "ReEncrypt")(c.ReEncrypt(ctx(), &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob,
		SourceEncryptionContext: ec, DestinationKeyId: k2.KeyMetadata.KeyId, SourceKeyId: aws.String(id)}))
	if aws.ToString(re.SourceKeyId) != aws.ToString(m.Arn) || aws.ToString(re.KeyId) != aws.ToString(k2.KeyMetadata.Arn) {
		t.Fatalf("ReEncrypt: %+v", re)
	}
	dec := must[*kms.DecryptOutput](t, "Decrypt re-encrypted")(c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob}))
	if string(dec.Plaintext) != "hello" || aws.ToString(dec.KeyId) != aws.ToString(k2.KeyMetadata.Arn) {
		t.Fatalf("Decrypt after ReEncrypt: %+v", dec)
	}
	_, err = c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, KeyId: aws.String(id)})
	wantErr(t, "Decrypt with another key's KeyId", err, "IncorrectKeyException", 400)
	_, err = c.ReEncrypt(ctx(), &kms.ReEncryptInput{CiphertextBlob: re.CiphertextBlob, DestinationKeyId: aws.String(id), SourceKeyId: aws.String(id)})
	wantErr(t, "ReEncrypt with another key's SourceKeyId", err, "IncorrectKeyException", 400)

	r := must[*kms.GenerateRandomOutput](t, "GenerateRandom")(c.GenerateRandom(ctx(), &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(48)}))
	if len(r.Plaintext) != 48 {
		t.Fatalf("GenerateRandom: %d bytes", len(r.Plaintext))
	}
}

// TestKeyStates: Disable/Enable, ScheduleKeyDeletion (7–30 days) and
// CancelKeyDeletion, with the errors a key's state gives.
func TestKeyStates(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	must[*kms.DisableKeyOutput](t, "DisableKey")(c.DisableKey(ctx(), &kms.DisableKeyInput{KeyId: id}))
	_, err := c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("x")})
	wantErr(t, "Encrypt under a disabled key", err, "DisabledException", 409)
	if d := must[*kms.DescribeKeyOutput](t, "DescribeKey")(c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: id})); d.KeyMetadata.Enabled ||
		d.KeyMetadata.KeyState != types.KeyStateDisabled {
		t.Fatalf("after DisableKey: %+v", d.KeyMetadata)
	}
	must[*kms.EnableKeyOutput](t, "EnableKey")(c.EnableKey(ctx(), &kms.EnableKeyInput{KeyId: id}))
	for _, days := range []int32{6, 31} {
		_, err = c.ScheduleKeyDeletion(ctx(), &kms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(days)})
		wantErr(t, "ScheduleKeyDeletion out of 7-30", err, "ValidationException", 400)
	}
	s := must[*kms.ScheduleKeyDeletionOutput](t, "ScheduleKeyDeletion")(c.ScheduleKeyDeletion(ctx(), &kms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)}))
	if s.KeyState != types.KeyStatePendingDeletion || aws.ToInt32(s.PendingWindowInDays) != 7 || s.DeletionDate == nil || !strings.HasPrefix(aws.ToString(s.KeyId), "arn:aws:kms:") {
		t.Fatalf("ScheduleKeyDeletion: %+v", s)
	}
	_, err = c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("x")})
	wantErr(t, "Encrypt under a key pending deletion", err, "KMSInvalidStateException", 409)
	_, err = c.EnableKey(ctx(), &kms.EnableKeyInput{KeyId: id})
	wantErr(t, "EnableKey on a key pending deletion", err, "KMSInvalidStateException", 409)
	cancel := must[*kms.CancelKeyDeletionOutput](t, "CancelKeyDeletion")(c.CancelKeyDeletion(ctx(), &kms.CancelKeyDeletionInput{KeyId: id}))
	if !strings.HasSuffix(aws.ToString(cancel.KeyId), ":key/"+aws.ToString(id)) {
		t.Fatalf("CancelKeyDeletion: %+v", cancel)
	}
	// As on AWS, the key leaves PendingDeletion Disabled.
	if d := must[*kms.DescribeKeyOutput](t, "DescribeKey")(c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: id})); d.KeyMetadata.KeyState != types.KeyStateDisabled {
		t.Fatalf("after CancelKeyDeletion: %s, want Disabled", d.KeyMetadata.KeyState)
	}
	_, err = c.CancelKeyDeletion(ctx(), &kms.CancelKeyDeletionInput{KeyId: id})
	wantErr(t, "CancelKeyDeletion of a key not pending deletion", err, "KMSInvalidStateException", 409)
}

// TestAliases: create, the reserved prefix, duplicates, repoint, list,
// delete.
func TestAliases(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	a := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata
	b := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata
	must[*kms.CreateAliasOutput](t, "CreateAlias")(c.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: a.KeyId}))
	_, err := c.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: b.KeyId})
	wantErr(t, "CreateAlias twice", err, "AlreadyExistsException", 409)
	for _, bad := range []string{"alias/aws/s3", "app", "alias/sp ace", "alias/" + strings.Repeat("x", 251)} {
		_, err = c.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String(bad), TargetKeyId: a.KeyId})
		wantErr(t, "CreateAlias "+bad, err, "InvalidAliasNameException", 400)
	}
	must[*kms.UpdateAliasOutput](t, "UpdateAlias")(c.UpdateAlias(ctx(), &kms.UpdateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: b.Arn}))
	l := must[*kms.ListAliasesOutput](t, "ListAliases")(c.ListAliases(ctx(), &kms.ListAliasesInput{KeyId: b.KeyId}))
	if len(l.Aliases) != 1 || aws.ToString(l.Aliases[0].AliasName) != "alias/app" || aws.ToString(l.Aliases[0].TargetKeyId) != aws.ToString(b.KeyId) ||
		aws.ToString(l.Aliases[0].AliasArn) != "arn:aws:kms:"+region+":"+account+":alias/app" || l.Truncated {
		t.Fatalf("ListAliases of the repointed key: %+v", l)
	}
	must[*kms.DeleteAliasOutput](t, "DeleteAlias")(c.DeleteAlias(ctx(), &kms.DeleteAliasInput{AliasName: aws.String("alias/app")}))
	_, err = c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String("alias/app")})
	wantErr(t, "DescribeKey of a deleted alias", err, "NotFoundException", 404)
	_, err = c.DeleteAlias(ctx(), &kms.DeleteAliasInput{AliasName: aws.String("alias/app")})
	wantErr(t, "DeleteAlias of a deleted alias", err, "NotFoundException", 404)
}

// TestPaging: ListKeys and ListAliases page with Limit and Marker, the
// SDK's paginator reads every key once, a bad Marker is refused.
func TestPaging(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	made := map[string]bool{}
	for i := 0; i < 5; i++ {
		k := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata
		made[aws.ToString(k.KeyId)] = true
		must[*kms.CreateAliasOutput](t, "CreateAlias")(c.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/k" + string(rune('0'+i))), TargetKeyId: k.KeyId}))
	}
	seen, pages := map[string]bool{}, 0
	for p := kms.NewListKeysPaginator(c, &kms.ListKeysInput{Limit: aws.Int32(2)}); p.HasMorePages(); pages++ {
		out := must[*kms.ListKeysOutput](t, "ListKeys page")(p.NextPage(ctx()))
		for _, k := range out.Keys {
			if seen[aws.ToString(k.KeyId)] || !strings.HasSuffix(aws.ToString(k.KeyArn), aws.ToString(k.KeyId)) {
				t.Fatalf("ListKeys: %s twice or with ARN %s", aws.ToString(k.KeyId), aws.ToString(k.KeyArn))
			}
			seen[aws.ToString(k.KeyId)] = true
		}
	}
	if pages != 3 || len(seen) != 5 {
		t.Fatalf("ListKeys Limit 2 over 5 keys: %d pages, %d keys", pages, len(seen))
	}
	var aliases int
	for p := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{Limit: aws.Int32(3)}); p.HasMorePages(); {
		aliases += len(must[*kms.ListAliasesOutput](t, "ListAliases page")(p.NextPage(ctx())).Aliases)
	}
	if aliases != 5 {
		t.Fatalf("ListAliases pages: %d aliases, want 5", aliases)
	}
	_, err := c.ListKeys(ctx(), &kms.ListKeysInput{Marker: aws.String("not-a-marker")})
	wantErr(t, "ListKeys with a bad Marker", err, "InvalidMarkerException", 400)
	_, err = c.ListKeys(ctx(), &kms.ListKeysInput{Limit: aws.Int32(1001)})
	wantErr(t, "ListKeys Limit 1001", err, "ValidationException", 400)
}

// TestRotation: EnableKeyRotation (90–365 days), GetKeyRotationStatus,
// RotateKeyOnDemand, ListKeyRotations, DisableKeyRotation.
func TestRotation(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	for _, days := range []int32{89, 366} {
		_, err := c.EnableKeyRotation(ctx(), &kms.EnableKeyRotationInput{KeyId: id, RotationPeriodInDays: aws.Int32(days)})
		wantErr(t, "EnableKeyRotation outside 90-365", err, "ValidationException", 400)
	}
	must[*kms.EnableKeyRotationOutput](t, "EnableKeyRotation")(c.EnableKeyRotation(ctx(), &kms.EnableKeyRotationInput{KeyId: id, RotationPeriodInDays: aws.Int32(90)}))
	st := must[*kms.GetKeyRotationStatusOutput](t, "GetKeyRotationStatus")(c.GetKeyRotationStatus(ctx(), &kms.GetKeyRotationStatusInput{KeyId: id}))
	if !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 90 || st.NextRotationDate == nil {
		t.Fatalf("GetKeyRotationStatus: %+v", st)
	}
	enc := must[*kms.EncryptOutput](t, "Encrypt")(c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("before")}))
	must[*kms.RotateKeyOnDemandOutput](t, "RotateKeyOnDemand")(c.RotateKeyOnDemand(ctx(), &kms.RotateKeyOnDemandInput{KeyId: id}))
	must[*kms.RotateKeyOnDemandOutput](t, "RotateKeyOnDemand")(c.RotateKeyOnDemand(ctx(), &kms.RotateKeyOnDemandInput{KeyId: id}))
	var rotations int
	for p := kms.NewListKeyRotationsPaginator(c, &kms.ListKeyRotationsInput{KeyId: id, Limit: aws.Int32(1)}); p.HasMorePages(); {
		out := must[*kms.ListKeyRotationsOutput](t, "ListKeyRotations")(p.NextPage(ctx()))
		for _, r := range out.Rotations {
			if r.RotationDate == nil || !strings.HasSuffix(aws.ToString(r.KeyId), aws.ToString(id)) {
				t.Fatalf("rotation: %+v", r)
			}
		}
		rotations += len(out.Rotations)
	}
	if rotations != 2 {
		t.Fatalf("ListKeyRotations after two rotations: %d", rotations)
	}
	if dec := must[*kms.DecryptOutput](t, "Decrypt after rotation")(c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})); string(dec.Plaintext) != "before" {
		t.Fatal("a blob made before rotation no longer decrypts")
	}
	must[*kms.DisableKeyRotationOutput](t, "DisableKeyRotation")(c.DisableKeyRotation(ctx(), &kms.DisableKeyRotationInput{KeyId: id}))
	if st := must[*kms.GetKeyRotationStatusOutput](t, "GetKeyRotationStatus")(c.GetKeyRotationStatus(ctx(), &kms.GetKeyRotationStatusInput{KeyId: id})); st.KeyRotationEnabled {
		t.Fatal("rotation still enabled after DisableKeyRotation")
	}
}

// TestDryRun: the operations that take DryRun answer
// DryRunOperationException (412) and do nothing.
func TestDryRun(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	enc := must[*kms.EncryptOutput](t, "Encrypt")(c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("x")}))
	yes := aws.Bool(true)
	for name, call := range map[string]func() error{
		"Encrypt": func() error {
			_, err := c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("x"), DryRun: yes})
			return err
		},
		"Decrypt": func() error {
			_, err := c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, DryRun: yes})
			return err
		},
		"GenerateDataKey": func() error {
			_, err := c.GenerateDataKey(ctx(), &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256, DryRun: yes})
			return err
		},
		"GenerateDataKeyWithoutPlaintext": func() error {
			_, err := c.GenerateDataKeyWithoutPlaintext(ctx(), &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: id, NumberOfBytes: aws.Int32(16), DryRun: yes})
			return err
		},
		"ReEncrypt": func() error {
			_, err := c.ReEncrypt(ctx(), &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: id, DryRun: yes})
			return err
		},
	} {
		wantErr(t, name+" DryRun", call(), "DryRunOperationException", 412)
	}
	// A DryRun that would fail fails as the real call would.
	must[*kms.DisableKeyOutput](t, "DisableKey")(c.DisableKey(ctx(), &kms.DisableKeyInput{KeyId: id}))
	_, err := c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("x"), DryRun: yes})
	wantErr(t, "Encrypt DryRun under a disabled key", err, "DisabledException", 409)
}

// TestBadInput: each bad parameter is refused with AWS's error naming it.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	cases := []struct {
		name, code, param string
		status            int
		call              func() error
	}{
		{"unknown key", "NotFoundException", "", 404, func() error {
			_, err := c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String("00000000-0000-4000-8000-000000000000")})
			return err
		}},
		{"ARN of another region", "NotFoundException", "KeyId", 404, func() error {
			_, err := c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:eu-west-1:" + account + ":key/" + aws.ToString(id))})
			return err
		}},
		{"malformed ARN", "InvalidArnException", "KeyId", 400, func() error {
			_, err := c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: aws.String("arn:aws:s3:::bucket")})
			return err
		}},
		{"asymmetric algorithm", "InvalidKeyUsageException", "EncryptionAlgorithm", 400, func() error {
			_, err := c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}},
		{"plaintext over 4096 bytes", "ValidationException", "Plaintext", 400, func() error {
			_, err := c.Encrypt(ctx(), &kms.EncryptInput{KeyId: id, Plaintext: make([]byte, 4097)})
			return err
		}},
		{"data key without KeySpec or NumberOfBytes", "ValidationException", "KeySpec", 400, func() error {
			_, err := c.GenerateDataKey(ctx(), &kms.GenerateDataKeyInput{KeyId: id})
			return err
		}},
		{"NumberOfBytes 1025", "ValidationException", "NumberOfBytes", 400, func() error {
			_, err := c.GenerateDataKey(ctx(), &kms.GenerateDataKeyInput{KeyId: id, NumberOfBytes: aws.Int32(1025)})
			return err
		}},
		{"GenerateRandom 0 bytes", "ValidationException", "NumberOfBytes", 400, func() error {
			_, err := c.GenerateRandom(ctx(), &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(0)})
			return err
		}},
		{"asymmetric key spec", "ValidationException", "KeySpec", 400, func() error {
			_, err := c.CreateKey(ctx(), &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048})
			return err
		}},
		{"garbage ciphertext", "InvalidCiphertextException", "", 400, func() error {
			_, err := c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: []byte("not a blob")})
			return err
		}},
		{"grant tokens", "InvalidGrantTokenException", "GrantTokens", 400, func() error {
			_, err := c.DescribeKey(ctx(), &kms.DescribeKeyInput{KeyId: id, GrantTokens: []string{"t"}})
			return err
		}},
	}
	for _, cs := range cases {
		err := cs.call()
		wantErr(t, cs.name, err, cs.code, cs.status)
		if cs.param != "" && !strings.Contains(err.Error(), cs.param) {
			t.Fatalf("%s: %v does not name %s", cs.name, err, cs.param)
		}
	}
}

// TestAccessDenied: the access key's policy is checked on the action and
// on the key resolved (an alias resolves to its key).
func TestAccessDenied(t *testing.T) {
	e := newEnv(t)
	admin := e.admin()
	allowed := must[*kms.CreateKeyOutput](t, "CreateKey")(admin.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	other := must[*kms.CreateKeyOutput](t, "CreateKey")(admin.CreateKey(ctx(), &kms.CreateKeyInput{})).KeyMetadata.KeyId
	must[*kms.CreateAliasOutput](t, "CreateAlias")(admin.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/allowed"), TargetKeyId: allowed}))
	c := e.client(limitedID, otherSec)
	must[*kms.EncryptOutput](t, "Encrypt under the allowed alias")(c.Encrypt(ctx(), &kms.EncryptInput{KeyId: aws.String("alias/allowed"), Plaintext: []byte("x")}))
	_, err := c.Encrypt(ctx(), &kms.EncryptInput{KeyId: other, Plaintext: []byte("x")})
	wantErr(t, "Encrypt under a key the policy does not name", err, "AccessDeniedException", 400)
	_, err = c.CreateKey(ctx(), &kms.CreateKeyInput{})
	wantErr(t, "CreateKey, an action the policy does not name", err, "AccessDeniedException", 400)
	blob := must[*kms.EncryptOutput](t, "Encrypt")(admin.Encrypt(ctx(), &kms.EncryptInput{KeyId: other, Plaintext: []byte("x")})).CiphertextBlob
	_, err = c.Decrypt(ctx(), &kms.DecryptInput{CiphertextBlob: blob})
	wantErr(t, "Decrypt of a blob under another key", err, "AccessDeniedException", 400)

	// Listings show only what the policy allows (issue 17's rule, on AWS).
	must[*kms.CreateAliasOutput](t, "CreateAlias")(admin.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/hidden"), TargetKeyId: other}))
	must[*kms.CreateAliasOutput](t, "CreateAlias")(admin.CreateAlias(ctx(), &kms.CreateAliasInput{AliasName: aws.String("alias/also-allowed-key"), TargetKeyId: allowed}))
	keys := must[*kms.ListKeysOutput](t, "ListKeys")(c.ListKeys(ctx(), &kms.ListKeysInput{}))
	if len(keys.Keys) != 1 || aws.ToString(keys.Keys[0].KeyId) != aws.ToString(allowed) {
		t.Fatalf("ListKeys under alias/allowed*: %+v", keys.Keys)
	}
	for _, in := range []*kms.ListAliasesInput{{}, {KeyId: aws.String("alias/allowed")}} {
		l := must[*kms.ListAliasesOutput](t, "ListAliases")(c.ListAliases(ctx(), in))
		if len(l.Aliases) != 1 || aws.ToString(l.Aliases[0].AliasName) != "alias/allowed" {
			t.Fatalf("ListAliases %+v under alias/allowed*: %d aliases", in, len(l.Aliases))
		}
	}
}

// TestUnknownOperation: a signed X-Amz-Target naming no operation served
// is UnknownOperationException, recorded under one "unknown" action.
func TestUnknownOperation(t *testing.T) {
	e := newEnv(t)
	c := e.client(accessID, secret, withTarget("TrentService.CreateCustomKeyStore"))
	_, err := c.ListKeys(ctx(), &kms.ListKeysInput{})
	wantErr(t, "an operation not served", err, "UnknownOperationException", 400)
	if rec := e.obs.last(); rec.Action != "unknown" || rec.API != "aws" || rec.AccessKeyId != accessID {
		t.Fatalf("record of an unknown operation: %+v", rec)
	}
}

// TestTags: CreateKey with Tags, TagResource (adds, replaces),
// ListResourceTags (sorted, paged), UntagResource, and the refusals.
func TestTags(t *testing.T) {
	e := newEnv(t)
	c := e.admin()
	tag := func(k, v string) types.Tag { return types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)} }
	id := must[*kms.CreateKeyOutput](t, "CreateKey")(c.CreateKey(ctx(), &kms.CreateKeyInput{Tags: []types.Tag{tag("team", "payments")}})).KeyMetadata.KeyId
	must[*kms.TagResourceOutput](t, "TagResource")(c.TagResource(ctx(), &kms.TagResourceInput{KeyId: id, Tags: []types.Tag{tag("env", "prod"), tag("team", "cards")}}))
	var got []string
	for p := kms.NewListResourceTagsPaginator(c, &kms.ListResourceTagsInput{KeyId: id, Limit: aws.Int32(1)}); p.HasMorePages(); {
		for _, tg := range must[*kms.ListResourceTagsOutput](t, "ListResourceTags")(p.NextPage(ctx())).Tags {
			got = append(got, aws.ToString(tg.TagKey)+"="+aws.ToString(tg.TagValue))
		}
	}
	if strings.Join(got, ",") != "env=prod,team=cards" {
		t.Fatalf("ListResourceTags: %v", got)
	}
	must[*kms.UntagResourceOutput](t, "UntagResource")(c.UntagResource(ctx(), &kms.UntagResourceInput{KeyId: id, TagKeys: []string{"env", "absent"}}))
	if l := must[*kms.ListResourceTagsOutput](t, "ListResourceTags")(c.ListResourceTags(ctx(), &kms.ListResourceTagsInput{KeyId: id})); len(l.Tags) != 1 || l.Truncated {
		t.Fatalf("after UntagResource: %+v", l.Tags)
	}
	for name, tags := range map[string][]types.Tag{
		"aws: prefix":       {tag("aws:owner", "x")},
		"duplicate key":     {tag("a", "1"), tag("a", "2")},
		"key of 129 chars":  {tag(strings.Repeat("k", 129), "x")},
		"value of 257 char": {tag("k", strings.Repeat("v", 257))},
	} {
		_, err := c.TagResource(ctx(), &kms.TagResourceInput{KeyId: id, Tags: tags})
		wantErr(t, "TagResource "+name, err, "TagException", 400)
		_, err = c.CreateKey(ctx(), &kms.CreateKeyInput{Tags: tags})
		wantErr(t, "CreateKey with "+name, err, "TagException", 400)
	}
	var many []types.Tag
	for i := 0; i < 50; i++ {
		many = append(many, tag("k"+strings.Repeat("x", i), "v"))
	}
	_, err := c.TagResource(ctx(), &kms.TagResourceInput{KeyId: id, Tags: many})
	wantErr(t, "a 51st tag", err, "LimitExceededException", 400)
	must[*kms.ScheduleKeyDeletionOutput](t, "ScheduleKeyDeletion")(c.ScheduleKeyDeletion(ctx(), &kms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)}))
	_, err = c.TagResource(ctx(), &kms.TagResourceInput{KeyId: id, Tags: []types.Tag{tag("a", "b")}})
	wantErr(t, "TagResource on a key pending deletion", err, "KMSInvalidStateException", 409)
}
