package sqlite

import (
	"context"
	"fmt"
	"sync"
)

// WithPortalLock runs fn while holding this process's lock for the portal,
// so that only one goroutine at a time refreshes the installer's token (a
// refresh spends a single-use refresh token; the loser must wait and then
// re-read). The lock is an in-process mutex, not a database lock: it
// serializes callers of this Store only, which is all a single-instance
// SQLite deployment has. No transaction is held while fn runs, so fn may
// make network calls and use the store freely.
//
// Waiting stops with ctx's error when ctx ends. A nested call for the same
// portal with the ctx handed to fn runs at once instead of deadlocking.
// ErrNotFound when the portal has no row; fn's error is returned as is.
func (s *Store) WithPortalLock(ctx context.Context, memberID string, fn func(ctx context.Context) error) error {
	return s.withLock(ctx, "portal\x00"+memberID, fn, func(ctx context.Context) error {
		if err := s.exists(ctx, `SELECT 1 FROM portals WHERE member_id = ?`, memberID); err != nil {
			return fmt.Errorf("store: lock portal %q: %w", memberID, err)
		}
		return nil
	})
}

// WithSessionLock is WithPortalLock for one frame session (by raw id):
// it serializes refreshes of that user's tokens within this process.
// ErrNotFound when the session has no row.
func (s *Store) WithSessionLock(ctx context.Context, id string, fn func(ctx context.Context) error) error {
	lookup := s.keys.Lookup(id)
	return s.withLock(ctx, "session\x00"+lookup, fn, func(ctx context.Context) error {
		if err := s.exists(ctx, `SELECT 1 FROM sessions WHERE id_lookup = ?`, lookup); err != nil {
			return fmt.Errorf("store: lock session: %w", err)
		}
		return nil
	})
}

// heldKey marks, in the context handed to fn, a lock its caller holds.
type heldKey struct {
	s   *Store
	key string
}

func (s *Store) withLock(ctx context.Context, key string, fn, check func(ctx context.Context) error) error {
	if ctx.Value(heldKey{s, key}) != nil {
		return fn(ctx)
	}
	unlock, err := s.locks.lock(ctx, key)
	if err != nil {
		return fmt.Errorf("store: wait for lock: %w", err)
	}
	defer unlock()
	// Checked under the lock, as the PostgreSQL backend's SELECT ... FOR
	// UPDATE does.
	if err := check(ctx); err != nil {
		return err
	}
	return fn(context.WithValue(ctx, heldKey{s, key}, true))
}

// keyedLocks is a set of mutexes created on demand per key and dropped when
// nobody holds or waits for them, so the map does not grow with every portal
// and session ever locked.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	// sem holds one token while the lock is held; a channel rather than a
	// sync.Mutex so that waiting can give up when the context ends.
	sem  chan struct{}
	refs int // holders plus waiters, guarded by keyedLocks.mu
}

func (k *keyedLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{sem: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.sem <- struct{}{}:
		return func() {
			<-l.sem
			k.release(key, l)
		}, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyedLocks) release(key string, l *keyedLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.m, key)
	}
}
