package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider/audit"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Check the server's audit log"}
	cmd.AddCommand(&cobra.Command{
		Use:   "verify FILE",
		Short: "Verify the audit log's hash chain (detects removed, inserted or edited lines)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := audit.Verify(f)
			if err != nil {
				return fmt.Errorf("%s: %w (%d lines before it verified)", args[0], err, res.Lines)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d lines, chain intact\n", args[0], res.Lines)
			return nil
		},
	})
	return cmd
}
