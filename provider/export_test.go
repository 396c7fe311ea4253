package provider

// SetZeroedHook lets tests see each plaintext buffer after the service
// cleared it.
func (s *Service) SetZeroedHook(f func([]byte)) { s.zeroed = f }
