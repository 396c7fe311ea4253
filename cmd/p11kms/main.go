// Command p11kms is the command-line face of p11kms: it sets up the embedded
// SoftHSM2 home, inspects tokens, and runs KMS operations. It holds flags
// and output only; the work is done by the provider, hsm and softhsm
// packages.
//
// The CLI is built on github.com/spf13/cobra, the de-facto standard for Go
// command suites (kubectl, gh, helm): nested commands, persistent flags,
// generated help and shell completion, with no code of ours to maintain.
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the CLI and returns the process exit status: 0 on success,
// 1 on an operation error, 2 on a usage error.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	if code, ok := exitCode(err); ok {
		return code
	}
	fmt.Fprintln(os.Stderr, "p11kms:", err)
	return 1
}
