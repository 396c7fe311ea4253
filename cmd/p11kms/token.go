package main

import (
	"fmt"
	"slices"

	"github.com/miekg/pkcs11"
	"github.com/spf13/cobra"
)

// neededMechanisms are the mechanisms p11kms uses, and what for.
var neededMechanisms = []struct {
	mech uint
	name string
	use  string
}{
	{pkcs11.CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN", "CMK versions"},
	{pkcs11.CKM_AES_GCM, "CKM_AES_GCM", "CiphertextBlob encrypt/decrypt"},
	{pkcs11.CKM_AES_ECB, "CKM_AES_ECB", "key check values"},
	{pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN", "RSA wrapping keys"},
	{pkcs11.CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP", "RSAES_OAEP_* import"},
	{pkcs11.CKM_RSA_PKCS, "CKM_RSA_PKCS", "RSAES_PKCS1_V1_5 import"},
	{pkcs11.CKM_RSA_X_509, "CKM_RSA_X_509", "OAEP-SHA-256 import fallback"},
	{pkcs11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN", "SM2 wrapping keys"},
	{pkcs11.CKM_ECDH1_DERIVE, "CKM_ECDH1_DERIVE", "SM2 import"},
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Inspect the token"}
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Show the module, the token and the mechanisms p11kms needs",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := g.openToken(cmd.Context())
			if err != nil {
				return err
			}
			defer tok.Close()
			out := cmd.OutOrStdout()
			info := tok.Info()
			fmt.Fprintf(out, "module        %s\n", tok.ModulePath())
			fmt.Fprintf(out, "token label   %s\n", tok.Label())
			fmt.Fprintf(out, "serial        %s\n", tok.Serial())
			fmt.Fprintf(out, "manufacturer  %s\n", trim(info.ManufacturerID))
			fmt.Fprintf(out, "model         %s\n", trim(info.Model))
			fmt.Fprintf(out, "slot          %d\n", tok.SlotID())
			fmt.Fprintf(out, "session pool  %d sessions\n", tok.PoolSize())
			mechs, err := tok.Mechanisms()
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "mechanisms p11kms needs:")
			missing := 0
			for _, m := range neededMechanisms {
				mark := "present"
				if !slices.Contains(mechs, m.mech) {
					mark = "MISSING"
					missing++
				}
				fmt.Fprintf(out, "  %-26s %-8s %s\n", m.name, mark, m.use)
			}
			if missing > 0 {
				fmt.Fprintf(out, "%d mechanism(s) missing: the operations named beside them will fail on this token\n", missing)
			}
			return nil
		},
	})
	return cmd
}

func trim(s string) string {
	end := len(s)
	for end > 0 && (s[end-1] == ' ' || s[end-1] == 0) {
		end--
	}
	return s[:end]
}
