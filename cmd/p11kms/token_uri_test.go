package main

import (
	"fmt"
	"strings"
	"testing"
)

// infoField returns the value of one "name   value" line of token info.
func infoField(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("token info has no %q line:\n%s", name, out)
	return ""
}

// --token takes the multi-attribute URIs other tools print; a URI that
// matches no token names its attributes and lists the tokens present; a
// malformed URI is a usage error (exit status 2) in the URI's words.
func TestCLITokenURIs(t *testing.T) {
	if _, errOut, code := cli(t, "init", "--token-label", "uri test"); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	out, errOut, code := cli(t, "--token", "pkcs11:token=uri%20test", "token", "info")
	if code != 0 || !strings.Contains(out, "token label   uri test") {
		t.Fatalf("token=uri%%20test: %d %s\n%s", code, errOut, out)
	}
	serial, manufacturer, model := infoField(t, out, "serial"), infoField(t, out, "manufacturer"), infoField(t, out, "model")
	esc := strings.NewReplacer(" ", "%20").Replace
	printed := fmt.Sprintf("pkcs11:model=%s;manufacturer=%s;serial=%s;token=uri%%20test", esc(model), esc(manufacturer), serial)
	out, errOut, code = cli(t, "--token", printed, "token", "info")
	if code != 0 || infoField(t, out, "serial") != serial {
		t.Fatalf("%s: %d %s\n%s", printed, code, errOut, out)
	}

	_, errOut, code = cli(t, "--token", "pkcs11:token=uri%20test;serial=123", "token", "info")
	for _, want := range []string{"p11kms: hsm: no token matches token=uri%20test;serial=123 in module ", "; tokens present: ",
		"token=uri%20test;serial=" + serial + ";slot-id="} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("token=uri%%20test;serial=123: exit %d, stderr %s\nwant exit 1 saying %q", code, errOut, want)
		}
	}

	for _, c := range []struct{ uri, want string }{
		{"token=kms", `p11kms: --token: hsm: PKCS#11 URI: it does not start with "pkcs11:"; accepted: pkcs11:token=LABEL;serial=SERIAL?module-path=`},
		{"pkcs11:token=kms;x-vendor=1", "p11kms: --token: hsm: PKCS#11 URI: unknown path attribute x-vendor= (under RFC 7512 "},
		{"pkcs11:token=kms?pin-sorce=file:/run/pin", "p11kms: --token: hsm: PKCS#11 URI: unknown query attribute pin-sorce=; accepted: module-path, module-name, pin-source, pin-value"},
		{"pkcs11:model=SoftHSM%20v2", "p11kms: --token: hsm: config: no token selected: give token=LABEL, serial=SERIAL or slot-id=N"},
	} {
		_, errOut, code := cli(t, "--token", c.uri, "token", "info")
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "pcks11") {
			t.Errorf("--token %s: exit %d, stderr %s\nwant exit 2 saying %q", c.uri, code, errOut, c.want)
		}
	}
	// A KMS command reports it as its InternalFailure, with the same words.
	_, errOut, code = cli(t, "--token", "token=kms", "kms", "ListKeys")
	if code != 1 || !strings.Contains(errOut, `"Code":"InternalFailure"`) || !strings.Contains(errOut, `does not start with \"pkcs11:\"`) {
		t.Errorf("kms ListKeys --token token=kms: exit %d, stderr %s", code, errOut)
	}
}
