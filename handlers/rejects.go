package handlers

import (
	"sync"
	"time"
)

// rejects remembers for a short while the fingerprints of tokens Bitrix24
// refused (a refresh token the OAuth server called a dead grant, an
// AUTH_ID the portal did not accept), so that the same junk sent again
// costs no second request to Bitrix24. Fingerprints are keyed hashes
// (secret.Keyring.Hash): the tokens themselves are never kept.
type rejects struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const (
	rejectTTL  = 10 * time.Minute
	maxRejects = 50_000
)

// seen reports whether fp was refused within the last rejectTTL.
func (r *rejects) seen(fp string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.m[fp]
	return ok && now.Sub(at) < rejectTTL
}

// add remembers a refused fingerprint.
func (r *rejects) add(fp string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]time.Time{}
	}
	if len(r.m) >= maxRejects {
		for k, at := range r.m {
			if now.Sub(at) >= rejectTTL {
				delete(r.m, k)
			}
		}
		if len(r.m) >= maxRejects {
			// Still full of fresh entries: start over rather than grow.
			clear(r.m)
		}
	}
	r.m[fp] = now
}
