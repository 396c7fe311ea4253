package provider

import "sync"

// plaintextBufSize is the capacity of a pooled plaintext buffer: the
// largest plaintext an operation holds (Encrypt input, a decrypted blob; a
// data key is at most MaxDataKeyBytes).
const plaintextBufSize = MaxPlaintextBytes

// maxPooledPlaintexts bounds what the pool keeps between operations
// (64 x 6 KiB); more buffers in flight are allocated and dropped.
const maxPooledPlaintexts = 64

// plaintextPool hands out the buffers that hold plaintext — data keys,
// decrypted blobs, Encrypt input — and takes them back cleared. Every
// plaintext the service holds lives in one of its buffers from the moment
// it leaves the token (or the request) until the operation returns, so
// "zeroed after use" is one place to check: a buffer in the free list is
// all zero, whatever operation used it and however it ended.
//
// A free list under a mutex rather than sync.Pool: sync.Pool may drop a
// buffer at any GC (under -race it drops some on purpose), and then a test
// could not look at the buffers the operations handed back.
type plaintextPool struct {
	mu   sync.Mutex
	free [][]byte // each of capacity plaintextBufSize, all zero
	out  int      // handed out, not yet returned
	gets uint64   // handed out since the service started
}

// get returns a buffer of length n (0 <= n), from the free list when n fits.
// The caller must give it back with put.
func (p *plaintextPool) get(n int) []byte {
	p.mu.Lock()
	p.out++
	p.gets++
	var b []byte
	if k := len(p.free); k > 0 && n <= plaintextBufSize {
		b = p.free[k-1]
		p.free[k-1] = nil
		p.free = p.free[:k-1]
	}
	p.mu.Unlock()
	if b == nil {
		b = make([]byte, max(n, plaintextBufSize))
	}
	return b[:n]
}

// put clears the whole of b (not only its length) and keeps it for reuse
// if it is a pool-sized buffer and the pool has room. nil is ignored.
func (p *plaintextPool) put(b []byte) {
	if b == nil {
		return
	}
	b = b[:cap(b)]
	clear(b)
	p.mu.Lock()
	p.out--
	if cap(b) == plaintextBufSize && len(p.free) < maxPooledPlaintexts {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
}

// fill returns a pool buffer holding a copy of src and clears src, which
// came from the token (the module's allocation, not the pool's).
func (p *plaintextPool) fill(src []byte) []byte {
	b := p.get(len(src))
	copy(b, src)
	clear(src)
	return b
}
