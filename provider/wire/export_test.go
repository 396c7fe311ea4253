package wire

import (
	"context"
	"testing"
)

// SetAfterAuthorize makes f run in the pipeline between a request's
// authorization and its call, until the test ends.
func SetAfterAuthorize(t testing.TB, f func(ctx context.Context)) {
	afterAuthorize = f
	t.Cleanup(func() { afterAuthorize = nil })
}
