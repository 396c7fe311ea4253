package importer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
	"github.com/p11kms/p11kms/softhsm"
)

// The child half of TestImportKilledAtEveryWrite: the test binary started
// again with these variables set runs one ImportDataKey (the request in
// JSON) on the token they name, instead of the tests.
const (
	importChildRequest = "P11KMS_IMPORT_CHILD_REQUEST"
	importChildToken   = "P11KMS_IMPORT_CHILD_TOKEN"
	importChildPIN     = "P11KMS_IMPORT_CHILD_PIN"
)

// Every token call of the child runs on its main thread, where strace
// counts its system calls: the kill points are then the same in every run.
func init() {
	if os.Getenv(importChildRequest) != "" {
		runtime.LockOSThread()
	}
}

// runImportChild imports, prints the response and returns the exit status.
func runImportChild() int {
	var req importer.ImportDataKeyRequest
	if err := json.Unmarshal([]byte(os.Getenv(importChildRequest)), &req); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	module, err := softhsm.FindModule() // SOFTHSM2_CONF comes from the parent
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	tok, err := hsm.Open(context.Background(), hsm.Config{ModulePath: module, TokenLabel: os.Getenv(importChildToken), PINEnv: importChildPIN})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer tok.Close()
	resp, err := importer.New(tok).ImportDataKey(context.Background(), &req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(resp)
	return 0
}

// killPoint is a system call of the child at which strace kills it: the
// ordinal-th call of syscall, counted from the start.
type killPoint struct {
	syscall string
	ordinal int
}

// SoftHSM2 changes a token only by rewriting an object file (truncate, then
// write: one ftruncate per write of a file) or removing one (unlink). The
// Go runtime makes neither call.
const mutatingCalls = "ftruncate,unlink,unlinkat"

// runStraced runs the child import under strace: killed with SIGKILL on
// entering the system call at kp, or (kp nil) to the end, with every
// mutating call in the order made. It returns the child's output, the
// calls, and whether it was killed.
func runStraced(t *testing.T, tok *softhsmtest.Token, req *importer.ImportDataKeyRequest, kp *killPoint) (string, []killPoint, bool) {
	t.Helper()
	body, _ := json.Marshal(req)
	log := filepath.Join(t.TempDir(), "strace.log")
	args := []string{"-qq", "-o", log, "-e", "trace=" + mutatingCalls}
	if kp != nil {
		args = append(args, "-e", fmt.Sprintf("inject=%s:signal=KILL:when=%d", kp.syscall, kp.ordinal))
	}
	cmd := exec.Command("strace", append(args, os.Args[0], "-test.run=^$")...)
	cmd.Env = append(os.Environ(), importChildRequest+"="+string(body), importChildToken+"="+tok.Label, importChildPIN+"="+tok.PIN)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	killed := killedBySignal(err, syscall.SIGKILL) // strace ends as its child did
	if kp == nil && err != nil || kp != nil && !killed {
		t.Fatalf("strace %s (kill at %+v): %v killed=%v\n%s%s", req.KeyLabel, kp, err, killed, out.String(), errOut.String())
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls []killPoint
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, _, ok := strings.Cut(sc.Text(), "(")
		if !ok || strings.HasPrefix(name, "+++") {
			continue
		}
		seen[name]++
		calls = append(calls, killPoint{name, seen[name]})
	}
	return out.String(), calls, killed
}

// TestImportKilledAtEveryWrite kills a persistent import (RSA token
// unwrap and SM2 host paths, Replace and a fresh label) with SIGKILL at
// every change SoftHSM2 makes to the token files — before each rewrite of
// an object file and before each removal — one kill per run, and checks
// what the kill left:
//   - no secret key without a label holds a value (a kill inside
//     C_CopyObject from a session key left one: SoftHSM2 writes the copy
//     with the source's CKA_TOKEN false and empty label, and its value,
//     before it applies the template);
//   - the label's next lookup (Encrypt, in a new Service) uses the old key
//     or the new one, never answers Rejected.Conflict (a kill between
//     creating the new key and destroying the old one left both);
//   - after that lookup the label holds exactly that key, with its final
//     CKA_ID (16 bytes), or nothing if a fresh import did not happen.
func TestImportKilledAtEveryWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 160-odd child processes (about a minute)")
	}
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("the kills are made by strace (scripts/install-deps installs it): ", err)
	}
	for _, alg := range []string{"RSAES_OAEP_SHA_1", "SM2PKE"} {
		for _, replace := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/replace=%v", alg, replace), func(t *testing.T) {
				tok, svc := newService(t) // a token each: what one case leaves cannot fail another
				wk := createWrappingKey(t, svc, map[string]string{"RSAES_OAEP_SHA_1": "RSA_2048", "SM2PKE": "EC_SM2"}[alg], "wrap")
				oldKey, newKey := randomKey(32), randomKey(32)
				label := fmt.Sprintf("dk-%s-%v", alg, replace)
				req := &importer.ImportDataKeyRequest{WrappingKeyLabel: wk.KeyLabel, WrappingAlgorithm: alg,
					ExportedDataKey: export(t, wk, alg, newKey), KeyLabel: label, Replace: replace}
				reset := func() {
					t.Helper()
					_, err := svc.DeleteKey(bg, &importer.DeleteKeyRequest{KeyLabel: label})
					if err != nil && provider.ErrorCode(err) != provider.CodeKeyNotFound {
						t.Fatal(err)
					}
					if replace {
						if _, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: wk.KeyLabel, WrappingAlgorithm: alg,
							ExportedDataKey: export(t, wk, alg, oldKey), KeyLabel: label}); err != nil {
							t.Fatal(err)
						}
					}
				}
				reset()
				_, calls, _ := runStraced(t, tok, req, nil)
				checkKilledImport(t, tok, label, oldKey, newKey, replace, "no kill", true)
				outcomes := map[string]int{}
				for _, kp := range calls {
					reset()
					runStraced(t, tok, req, &kp)
					outcomes[checkKilledImport(t, tok, label, oldKey, newKey, replace, fmt.Sprintf("killed at %s #%d", kp.syscall, kp.ordinal), false)]++
				}
				t.Logf("%d kill points (%s): %v", len(calls), mutatingCalls, outcomes)
				if len(calls) < 4 || outcomes["new key"] == 0 || outcomes["old key"]+outcomes["no key"] == 0 {
					t.Fatalf("the kills did not cover the import: %d kill points, outcomes %v", len(calls), outcomes)
				}
			})
		}
	}
}

// checkKilledImport checks the token after a (killed) import of label and
// says which key the label ended with: "old key", "new key" or "no key".
func checkKilledImport(t *testing.T, tok *softhsmtest.Token, label string, oldKey, newKey []byte, replace bool, what string, mustBeNew bool) string {
	t.Helper()
	assertNoStrayKey(t, tok, what)
	// A new Service: nothing cached, as in another process.
	enc, err := importer.New(tok.Token).Encrypt(bg, &importer.EncryptRequest{KeyLabel: label, Plaintext: "cDExa21z"})
	outcome := "no key"
	switch {
	case err == nil:
		blob, _ := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
		for name, key := range map[string][]byte{"old key": oldKey, "new key": newKey} {
			if pt, err := goGCM(key).Open(nil, blob[:12], blob[12:], []byte(importer.DefaultAAD)); err == nil && string(pt) == "p11kms" {
				outcome = name
			}
		}
		if outcome == "no key" || outcome == "old key" && !replace {
			t.Fatalf("%s: %q encrypts with neither the old nor the new key", what, label)
		}
	case provider.ErrorCode(err) == provider.CodeKeyNotFound && !replace:
	default:
		t.Fatalf("%s: the label's next lookup: %v", what, err)
	}
	if mustBeNew && outcome != "new key" {
		t.Fatalf("%s: %q holds the %s", what, label, outcome)
	}
	// The lookup settled the label: one key with its final ID, or none.
	hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil {
		t.Fatal(err)
	}
	want := 1
	if outcome == "no key" {
		want = 0
	}
	if len(hs) != want {
		t.Fatalf("%s: %d secret keys labelled %q after its lookup (%s), want %d", what, len(hs), label, outcome, want)
	}
	for _, h := range hs {
		if a, err := tok.Attributes(bg, h, pkcs11.CKA_ID); err != nil || len(a[pkcs11.CKA_ID]) != 16 {
			t.Fatalf("%s: the key labelled %q has CKA_ID %q (%v), want a final 16-byte ID", what, label, a[pkcs11.CKA_ID], err)
		}
	}
	return outcome
}

// assertNoStrayKey fails if a secret key without a label holds a usable
// value. Unlabelled keys without one are SoftHSM2's half-made objects (a
// kill while it wrote an object's default attributes): no key material.
// Objects whose file says CKA_TOKEN false (half-made ones, and the stray
// copy) get a handle of the session that found them, so the search and
// the checks share one session, opened on the module directly.
func assertNoStrayKey(t *testing.T, tok *softhsmtest.Token, what string) {
	t.Helper()
	p := pkcs11.New(tok.ModulePath()) // the module this process already initialised
	sh, err := p.OpenSession(tok.SlotID(), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(sh)
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY)}); err != nil {
		t.Fatal(err)
	}
	hs, _, err := p.FindObjects(sh, 10000)
	p.FindObjectsFinal(sh)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		a, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil)})
		if err != nil {
			t.Fatalf("%s: reading secret key %d: %v", what, h, err)
		}
		if len(a[0].Value) > 0 {
			continue
		}
		// The AES KCV computes only with a key value.
		if p.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}, h) != nil {
			continue
		}
		if _, err := p.Encrypt(sh, make([]byte, 16)); err == nil {
			t.Fatalf("%s: a secret key without a label (CKA_TOKEN %v) holds key material", what, a[1].Value)
		}
	}
}

// killedBySignal reports whether err is a process killed by sig.
func killedBySignal(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
