package main

import (
	"encoding/base64"
	"strings"
	"testing"
)

// awsError runs the CLI, insists on an AWS error with the code (exit 1,
// {"__type","message"} on stderr) and returns its message.
func awsError(t *testing.T, code string, args ...string) string {
	t.Helper()
	_, errOut, exit := cli(t, args...)
	if exit != 1 {
		t.Fatalf("%v: exit %d, want 1 (%s)", args, exit, errOut)
	}
	e := jsonOut(t, errOut)
	if e["__type"] != code {
		t.Fatalf("%v: %s, want %s", args, errOut, code)
	}
	return e["message"].(string)
}

// TestAWSActions: `p11kms aws <Operation> --Param` runs the AWS dialect's
// operations on the token, with AWS's answers, errors and ARNs.
func TestAWSActions(t *testing.T) {
	if _, _, code := cli(t, "init"); code != 0 {
		t.Fatal("init failed")
	}
	arnFlags := []string{"--region", "us-east-1", "--account", "111122223333"}
	aws := func(args ...string) []string { return append(append([]string{"aws"}, args...), arnFlags...) }
	out, errOut, code := cli(t, aws("CreateKey", "--Description", "cli aws")...)
	if code != 0 {
		t.Fatalf("CreateKey: %s", errOut)
	}
	m := jsonOut(t, out)["KeyMetadata"].(map[string]any)
	id, arn := m["KeyId"].(string), m["Arn"].(string)
	if arn != "arn:aws:kms:us-east-1:111122223333:key/"+id || m["KeySpec"] != "SYMMETRIC_DEFAULT" || m["Enabled"] != true {
		t.Fatalf("CreateKey: %s", out)
	}
	alias := "alias/cli-aws-" + id[:8]
	if _, errOut, code := cli(t, aws("CreateAlias", "--AliasName", alias, "--TargetKeyId", arn)...); code != 0 {
		t.Fatal(errOut)
	}
	pt := base64.StdEncoding.EncodeToString([]byte("hello from the CLI"))
	out, errOut, code = cli(t, aws("Encrypt", "--KeyId", alias, "--Plaintext", pt, "--EncryptionContext", `{"a":"b"}`)...)
	if code != 0 {
		t.Fatal(errOut)
	}
	blob := jsonOut(t, out)["CiphertextBlob"].(string)
	out, errOut, code = cli(t, aws("Decrypt", "--CiphertextBlob", blob, "--EncryptionContext", `{"a":"b"}`, "--KeyId", id)...)
	if d := jsonOut(t, out); code != 0 || d["Plaintext"] != pt || d["KeyId"] != arn {
		t.Fatalf("Decrypt: %s %s", out, errOut)
	}
	awsError(t, "InvalidCiphertextException", aws("Decrypt", "--CiphertextBlob", blob)...)
	awsError(t, "NotFoundException", aws("DescribeKey", "--KeyId", "00000000-0000-4000-8000-000000000000")...)
	awsError(t, "NotFoundException", aws("DescribeKey", "--KeyId", "arn:aws:kms:eu-west-1:111122223333:key/"+id)...)
	awsError(t, "InvalidAliasNameException", aws("CreateAlias", "--AliasName", "alias/aws/ebs", "--TargetKeyId", id)...)
	if msg := awsError(t, "ValidationException", aws("GenerateDataKey", "--KeyId", id, "--NumberOfBytes", "x")...); !strings.Contains(msg, "NumberOfBytes") {
		t.Fatalf("NumberOfBytes x: %s", msg)
	}
	if msg := awsError(t, "ValidationException", aws("ScheduleKeyDeletion", "--KeyId", id, "--PendingWindowInDays", "31")...); !strings.Contains(msg, "7 to 30") {
		t.Fatalf("PendingWindowInDays 31: %s", msg)
	}
	out, errOut, code = cli(t, aws("GenerateDataKey", "--KeyId", alias, "--KeySpec", "AES_256")...)
	if g := jsonOut(t, out); code != 0 || g["Plaintext"] == nil || g["CiphertextBlob"] == nil {
		t.Fatalf("GenerateDataKey: %s %s", out, errOut)
	}
	out, _, code = cli(t, aws("ListKeys", "--Limit", "1")...)
	if l := jsonOut(t, out); code != 0 || len(l["Keys"].([]any)) != 1 {
		t.Fatalf("ListKeys: %s", out)
	}
	if _, errOut, code := cli(t, aws("TagResource", "--KeyId", id, "--Tags", `[{"TagKey":"team","TagValue":"cli"}]`)...); code != 0 {
		t.Fatal(errOut)
	}
	out, _, _ = cli(t, aws("ListResourceTags", "--KeyId", arn)...)
	if tags := jsonOut(t, out)["Tags"].([]any); len(tags) != 1 || tags[0].(map[string]any)["TagValue"] != "cli" {
		t.Fatalf("ListResourceTags: %s", out)
	}
	awsError(t, "TagException", aws("TagResource", "--KeyId", id, "--Tags", `[{"TagKey":"aws:x","TagValue":"y"}]`)...)
	for _, args := range [][]string{aws("Encrypt", "--Plaintext", pt), aws("DescribeKey", "--Bogus", "1"), aws("NoSuchOperation")} {
		if _, _, code := cli(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestAccessKeyCreateAWS: --id-prefix AKIA makes an AWS-style access key.
func TestAccessKeyCreateAWS(t *testing.T) {
	file := t.TempDir() + "/ak.json"
	out, errOut, code := cli(t, "accesskey", "create", "--access-keys", file, "--id-prefix", "AKIA")
	if code != 0 {
		t.Fatal(errOut)
	}
	if id := jsonOut(t, out)["AccessKeyId"].(string); !strings.HasPrefix(id, "AKIA") {
		t.Fatalf("AccessKeyId %s", id)
	}
	if _, errOut, code := cli(t, "accesskey", "create", "--access-keys", file, "--id-prefix", "ASIA"); code != 2 || !strings.Contains(errOut, "AKIA") {
		t.Fatalf("--id-prefix ASIA: %d %s", code, errOut)
	}
}
