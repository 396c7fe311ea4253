package hsm_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/softhsm"
)

// The child half of the cross-process tests: the test binary started again
// with these variables set runs runChild instead of the tests.
const (
	childOp    = "P11KMS_HSM_CHILD"
	childToken = "P11KMS_HSM_CHILD_TOKEN"
	childPIN   = "P11KMS_HSM_CHILD_PIN"
	childLabel = "P11KMS_HSM_CHILD_LABEL"
	crossApp   = "p11kms-crossprocess"
)

// runChild opens the token the parent names and makes one change to it.
func runChild() int {
	ctx := context.Background()
	module, err := softhsm.FindModule() // SOFTHSM2_CONF comes from the parent
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	tok, err := hsm.Open(ctx, hsm.Config{ModulePath: module, TokenLabel: os.Getenv(childToken), PINEnv: childPIN})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer tok.Close()
	label := os.Getenv(childLabel)
	switch op := os.Getenv(childOp); op {
	case "create-data":
		_, err = tok.CreateData(ctx, crossApp, label, []byte("from the other process"))
	case "destroy-data":
		err = tok.DestroyData(ctx, crossApp, label)
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// inOtherProcess runs one change to tok in a new process and waits for it.
func inOtherProcess(t *testing.T, tok *softhsmtest.Token, op, label string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childOp+"="+op, childToken+"="+tok.Label, childPIN+"="+tok.PIN, childLabel+"="+label)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s in another process: %v\n%s", op, label, err, out)
	}
}

// countData finds data objects by label with one C_FindObjects: no retry,
// no confirmation, exactly what this process's SoftHSM2 sees.
func countData(t *testing.T, tok *softhsmtest.Token, label string) int {
	t.Helper()
	hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, crossApp),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil {
		t.Fatal(err)
	}
	return len(hs)
}

// SoftHSM2 2.6.1 hides from a process the objects other processes created
// or destroyed since it last looked, once that process creates or destroys
// a token object of its own (it records the token's new generation without
// re-reading the directory). hsm brings its view up to date first, under
// the host-wide object lock. Each case: the other process changes the
// token, this process makes its own change, and a plain C_FindObjects must
// see the other process's change.
func TestOwnCreationKeepsOtherProcessObjectsVisible(t *testing.T) {
	tok := softhsmtest.New(t)
	own := 0
	cases := []struct {
		name string
		op   func() error
	}{
		{"GenerateAESKey", func() error {
			own++
			_, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: fmt.Sprintf("own-%d", own), Usage: hsm.UsageEncrypt})
			return err
		}},
		{"CreateData", func() error {
			own++
			_, err := tok.CreateData(bg, crossApp, fmt.Sprintf("own-%d", own), []byte("mine"))
			return err
		}},
		{"DestroyObject", func() error {
			own++
			h, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: fmt.Sprintf("own-%d", own), Usage: hsm.UsageEncrypt})
			if err != nil {
				return err
			}
			inOtherProcess(t, tok, "create-data", fmt.Sprintf("late-%d", own))
			if err := tok.DestroyObject(bg, h); err != nil {
				return err
			}
			if n := countData(t, tok, fmt.Sprintf("late-%d", own)); n != 1 {
				return fmt.Errorf("after destroying its own key this process sees %d objects the other process created, want 1", n)
			}
			return nil
		}},
		{"GenerateKeyPair", func() error {
			own++
			_, err := tok.GenerateKeyPair(bg, hsm.KeyPairOptions{Type: hsm.SM2, Label: fmt.Sprintf("own-%d", own)})
			return err
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			created := fmt.Sprintf("other-%d", i)
			countData(t, tok, created) // this process looks at the token now
			inOtherProcess(t, tok, "create-data", created)
			if err := c.op(); err != nil {
				t.Fatal(err)
			}
			if n := countData(t, tok, created); n != 1 {
				t.Fatalf("after its own %s this process sees %d objects the other process created, want 1", c.name, n)
			}
			inOtherProcess(t, tok, "destroy-data", created)
			if err := c.op(); err != nil {
				t.Fatal(err)
			}
			if n := countData(t, tok, created); n != 0 {
				t.Fatalf("after its own %s this process sees %d objects the other process destroyed, want 0", c.name, n)
			}
		})
	}
}
