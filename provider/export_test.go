package provider

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
