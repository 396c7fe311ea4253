package importer_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
)

// The host-wide label lock lives in $TMPDIR/p11kms-<uid>, which must be
// this user's own directory. A directory another user planted (here: a
// symbolic link to a directory anyone can write, or a world-writable
// directory) would let them hold or swap the lock files, so an import
// refuses to go ahead without the lock instead of proceeding unlocked, and
// writes nothing.
func TestImportRefusesAPlantedLockDirectory(t *testing.T) {
	st, svc := newService(t)
	tok := st.Token
	wk := createWrappingKey(t, svc, "RSA_2048", "wrap")
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, dir string)
		want  string
	}{
		{"symlink", func(t *testing.T, dir string) {
			target := t.TempDir()
			os.Chmod(target, 0o777)
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
		}, "is not a directory"},
		{"world-writable", func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, 0o777)
		}, "writable by other users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			tc.plant(t, filepath.Join(tmp, fmt.Sprintf("p11kms-%d", os.Getuid())))
			before := census(t, tok)
			_, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap",
				WrappingAlgorithm: "RSAES_OAEP_SHA_1", ExportedDataKey: export(t, wk, "RSAES_OAEP_SHA_1", randomKey(32)),
				KeyLabel: "dk-" + tc.name})
			if provider.ErrorCode(err) != provider.CodeInternalFailure || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import with a planted lock directory: got %v, want InternalFailure saying %q", err, tc.want)
			}
			if after := census(t, tok); after != before {
				t.Fatalf("the refused import changed the token: %v -> %v", before, after)
			}
		})
	}
}
