package wire

import (
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/p11kms/p11kms/provider"
)

// RecoverRequest is deferred by the API handlers around one request: a
// panic while serving it becomes *err, an InternalFailure, instead of a
// dropped connection (and, for a panic inside a token call, a pool session
// lost with it). The client sees only "internal failure"; the cause — the
// panic's value and the stack, which shows argument words, never the
// contents of buffers — goes to the server's log through Record.Err.
// http.ErrAbortHandler goes on: it is how a handler aborts on purpose.
func RecoverRequest(err *error) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	*err = provider.Internal("serving the request", fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
}
