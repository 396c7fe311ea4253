package provider_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/provider"
)

// GenerateRandom is a core operation: the token's random bytes, 1 to
// MaxDataKeyBytes of them, a clear InvalidParameter otherwise.
func TestGenerateRandom(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	a, err := s.GenerateRandom(ctx, "NumberOfBytes", 32)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.GenerateRandom(ctx, "NumberOfBytes", 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || len(b) != 32 || bytes.Equal(a, b) {
		t.Fatalf("two draws of 32 bytes: %x %x", a, b)
	}
	for _, n := range []uint64{0, provider.MaxDataKeyBytes + 1, 1 << 63} {
		_, err := s.GenerateRandom(ctx, "NumberOfBytes", n)
		if provider.ErrorCode(err) != provider.CodeInvalidParameter || !strings.Contains(err.Error(), "NumberOfBytes") ||
			!strings.Contains(err.Error(), "accepted 1 to 1024") {
			t.Errorf("n=%d: %v", n, err)
		}
	}
}
