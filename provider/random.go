package provider

import (
	"context"
)

// GenerateRandom returns n random bytes from the token's RNG
// (C_GenerateRandom), for the wire's GenerateRandom actions and in-process
// callers; n is 1 to MaxDataKeyBytes (param names the parameter in
// errors). The caller zeroes the bytes when done.
func (s *Service) GenerateRandom(ctx context.Context, param string, n uint64) ([]byte, error) {
	if n < 1 || n > MaxDataKeyBytes {
		return nil, InvalidParam(param, "%d: accepted 1 to %d", n, MaxDataKeyBytes)
	}
	b, err := s.tok.Random(ctx, int(n))
	if err != nil {
		return nil, Internal("drawing random bytes from the token", err)
	}
	return b, nil
}
