package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/provider/audit"
)

// While the audit log cannot be written, `serve` refuses signed requests
// of both dialects with their service-unavailable code (fail closed); once
// a write succeeds again (the refused request's own record is that write),
// requests are served again (issue 17, finding 9). The log is broken for
// real: its path becomes a directory, which the next write cannot open
// (root ignores file modes, so chmod would not do).
func TestServeRefusesRequestsWhileTheAuditLogFails(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	home, auditDir := filepath.Join(dir, "home"), filepath.Join(dir, "audit")
	id, secret := initHome(t, bin, home)
	if err := os.Mkdir(auditDir, 0o700); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	srv := startServe(t, bin, home, addr, "--audit-dir", auditDir, "--node-name", "n1", "--audit-checkpoint-interval", "1h")
	defer stopServe(t, srv)
	ali, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"),
		RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint, cpf.HttpProfile.Scheme = addr, "HTTP"
	tc, err := tckms.NewClient(common.NewCredential(id, secret), "ap-guangzhou", cpf)
	if err != nil {
		t.Fatal(err)
	}
	aliCode := func() string {
		_, err := ali.ListKeys(&alikms.ListKeysRequest{})
		return sdkCode(err)
	}
	tcErr := func() error {
		_, err := tc.GetServiceStatus(tckms.NewGetServiceStatusRequest())
		return err
	}
	if code := aliCode(); code != "" {
		t.Fatalf("healthy log: %s", code)
	}
	path := filepath.Join(auditDir, audit.FileName("n1"))
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	// This request was checked while the log was healthy; its own record
	// is the write that fails.
	if code := aliCode(); code != "" {
		t.Fatalf("the request whose record fails: %s", code)
	}
	if code := aliCode(); code != "ServiceUnavailable" {
		t.Fatalf("Alibaba with the log failing: %q, want ServiceUnavailable", code)
	}
	if err := tcErr(); err == nil || !strings.Contains(err.Error(), "Code=ServiceUnavailable") || !strings.Contains(err.Error(), "audit log") {
		t.Fatalf("Tencent with the log failing: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// Still refused (the last write failed), but its record is written:
	// the log is healthy again and the next requests are served.
	if code := aliCode(); code != "ServiceUnavailable" {
		t.Fatalf("first request after the repair: %q", code)
	}
	if code := aliCode(); code != "" {
		t.Fatalf("Alibaba after the repair: %s", code)
	}
	if err := tcErr(); err != nil {
		t.Fatalf("Tencent after the repair: %v", err)
	}
	lines, _ := os.ReadFile(path)
	if n := strings.Count(string(lines), "\n"); n != 3 {
		t.Fatalf("the new log file has %d lines, want 3 (the refused request, then two served):\n%s", n, lines)
	}
}
