package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// --pprof takes only a loopback host:port, refused with a usage error
// naming the flag before anything is opened (the token here does not
// exist).
func TestServePprofIsLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "[::]:6060", "example.com:6060", "127.0.0.1"} {
		_, errOut, code := cli(t, "--token", "pkcs11:token=no-such-token", "serve", "--listen", "127.0.0.1:0", "--pprof", addr)
		if code != 2 || !strings.Contains(errOut, `--pprof "`+addr+`"`) || !strings.Contains(errOut, "accepted a loopback host:port") {
			t.Errorf("serve --pprof %s: status %d, want 2 naming --pprof and the accepted values:\n%s", addr, code, errOut)
		}
	}
}

// serve --pprof 127.0.0.1:P serves the profiling endpoints there, and only
// there: the API port answers none of them.
func TestServePprofServesProfilesOnItsOwnPort(t *testing.T) {
	bin := buildBinary(t)
	home := t.TempDir()
	initHome(t, bin, home)
	addr, pprofAddr := freePort(t), freePort(t)
	srv := startServe(t, bin, home, addr, "--audit-log", "-", "--pprof", pprofAddr)
	defer stopServe(t, srv)

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + pprofAddr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "allocs") {
		t.Fatalf("--pprof index: %d %.200s", code, body)
	}
	if code, body := get("http://" + pprofAddr + "/debug/pprof/allocs?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Fatalf("--pprof allocs: %d %.200s", code, body)
	}
	if code, body := get("http://" + addr + "/debug/pprof/"); code == http.StatusOK || strings.Contains(body, "allocs") {
		t.Fatalf("the API port serves the profiling index: %d %.200s", code, body)
	}
}
