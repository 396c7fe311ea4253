package provider

import "context"

// PlaintextPoolState reports the service's plaintext buffers: how many are
// handed out and not returned, how many were handed out in all, and copies
// of the ones the pool keeps (each should be all zero).
func (s *Service) PlaintextPoolState() (out int, gets uint64, free [][]byte) {
	s.plain.mu.Lock()
	defer s.plain.mu.Unlock()
	for _, list := range s.plain.free {
		for _, b := range list {
			free = append(free, append([]byte(nil), b...))
		}
	}
	return s.plain.out, s.plain.gets, free
}

// VerifyBothWays checks a signature as AsymmetricVerify does (in Go where
// Go has the algorithm) and with the public key in the token, so a test
// can show both agree.
func (s *Service) VerifyBothWays(ctx context.Context, keyID, versionID, alg string, digest, sig []byte) (inGo, inToken bool, err error) {
	k, err := s.asymVersion(ctx, keyID, versionID, KeyUsageSign, alg)
	if err != nil {
		return false, false, err
	}
	if err = s.withPair(ctx, k); err != nil {
		return false, false, err
	}
	if inGo, err = s.verifySignature(ctx, k, alg, digest, sig); err != nil {
		return false, false, err
	}
	inToken, err = s.verifyInToken(ctx, k, alg, digest, sig)
	return inGo, inToken, err
}
